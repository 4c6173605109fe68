import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { compareIds } from '../src/protocol/ids.js';
import { connectClient, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedisSentinel, type RedisSentinelSet } from './helpers/redis-sentinel.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
const ROOM = 'feed:sentinel';
/** A room without history: at-most-once, it only has to work again after the failover. */
const LIVE = 'live:sentinel';
const SUBSCRIBERS = 8;
/** Pacing of the publisher (not a wait for anything): 50 publishes a second, alternating gateways. */
const PUBLISH_INTERVAL_MS = 20;
/** Acknowledged publishes before the fault, and after it once the gateways are on the new master. */
const ACKED_BEFORE = 30;
const ACKED_AFTER = 30;

/**
 * When a publish was sent: before the fault; while it runs, with the old master perhaps still
 * taking writes; once the old master can take none (killed), with no new master yet; after both
 * gateways are on the new master. What is sent `gone` or `after` can only be run by the new master.
 */
type Phase = 'before' | 'switching' | 'gone' | 'after';
const GUARANTEED: readonly Phase[] = ['gone', 'after'];

interface Publish {
  n: number;
  phase: Phase;
  status: number | undefined;
  /** The stream offset, when acknowledged. */
  id: string | undefined;
}

interface Setup {
  set: RedisSentinelSet;
  gateways: Gateway[];
  subscribers: TestClient[];
  disconnects: number[];
}

/**
 * Two gateways (uWS and node) on the Sentinel set, subscribers on both over WebSocket and
 * long-polling, in ROOM and LIVE. `track` gets what to stop, as soon as it runs.
 */
async function setUp(set: RedisSentinelSet, track: (stop: () => Promise<void>) => void): Promise<Setup> {
  const env = { ...set.env, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'feed:*' };
  const gateways: Gateway[] = [];
  const subscribers: TestClient[] = [];
  track(async () => {
    for (const c of subscribers) c.close();
    await Promise.all(gateways.map((g) => g.stop()));
  });
  for (const TRANSPORT of ['uws', 'node']) gateways.push(await startGateway({ env: { ...env, TRANSPORT } }));
  const master = await set.master();
  for (const g of gateways) {
    await onMaster(g, master);
    await waitFor(`${g.replicaId} ready`, async () => (await fetch(`${g.url}/readyz`)).status === 200);
  }
  for (let i = 0; i < SUBSCRIBERS; i++) subscribers.push(await connectClient(gateways[i % 2]!.url, { transport: i % 4 < 2 ? 'websocket' : 'polling' }));
  const disconnects = subscribers.map(() => 0);
  for (const [i, s] of subscribers.entries()) {
    for (const room of [ROOM, LIVE]) assert.equal(((await s.subscribe(room)) as { ok: boolean }).ok, true);
    s.socket.on('disconnect', () => disconnects[i]!++);
  }
  return { set, gateways, subscribers, disconnects };
}

/** Both of the gateway's Redis connections are on the server at `port` (herald logs each `ready` with its server). */
async function onMaster(g: Gateway, port: number): Promise<void> {
  for (const client of ['pub', 'sub']) {
    await g
      .waitForLog(`${client} on 127.0.0.1:${port}`, (l) => l.msg === 'redis ready' && l.client === client && l.server === `127.0.0.1:${port}`)
      .catch((err: Error) => {
        const redisLogs = g.logs.filter((l) => /redis/.test(l.msg)).map((l) => JSON.stringify(l));
        throw new Error(`${err.message}\n${redisLogs.join('\n')}`);
      });
  }
}

/**
 * Publishes to ROOM, alternating gateways, until `fault` has run and ACKED_AFTER publishes sent after
 * it were acknowledged. `fault` resolves with the new master's port and calls `gone` once the old
 * master can take no more writes; every publish is recorded with the phase it was sent in.
 */
async function publishThrough(s: Setup, fault: (gone: () => void) => Promise<number>): Promise<{ log: Publish[]; newMaster: number }> {
  const log: Publish[] = [];
  let phase: Phase = 'before';
  let stop = false;
  const loop = (async () => {
    for (let n = 1; !stop; n++) {
      const sentIn = phase;
      const res = await publish(s.gateways[n % 2]!.url, { room: ROOM, event: 'seq', data: n }, KEY).catch(() => undefined);
      log.push({ n, phase: sentIn, status: res?.status, id: res?.status === 200 ? (res.body.ids[ROOM] as string) : undefined });
      await delay(PUBLISH_INTERVAL_MS);
    }
  })();
  const acked = (p: Phase) => log.filter((e) => e.phase === p && e.id).length;
  try {
    await waitFor('publishes acknowledged before the fault', () => acked('before') >= ACKED_BEFORE);
    phase = 'switching';
    const newMaster = await fault(() => {
      phase = 'gone';
    });
    for (const g of s.gateways) await onMaster(g, newMaster);
    phase = 'after';
    await waitFor('publishes acknowledged after the failover', () => acked('after') >= ACKED_AFTER, 30_000);
    return { log, newMaster };
  } finally {
    stop = true;
    await loop;
  }
}

const idsOf = (c: TestClient) => c.received.filter((m) => m.event === 'seq' && m.meta.room === ROOM).map((m) => m.meta.id);

/** The last `herald:reset` of ROOM a subscriber got: the room must be reloaded up to its offset. */
const resetOf = (c: TestClient) =>
  c.received.filter((m) => m.event === 'herald:reset' && (m.data as { room: string }).room === ROOM).at(-1)?.data as
    | { code: string; offset?: string }
    | undefined;

interface Outcome {
  /** Acknowledged, and not on the new master: written to the old one, and not carried over by replication. */
  lostToReplication: string[];
  resets: number;
  /** Subscribers without a reset that missed a message acknowledged before the old master was gone. */
  missingBeforeFault: number;
}

/**
 * What holds through a failover, per subscriber:
 * - messages arrive in order and at most once;
 * - every message acknowledged after the old master was gone arrives, unless a `herald:reset` said
 *   the room must be reloaded and the message is at or before its offset;
 * - with no reset, everything the new master holds arrives; after a reset, everything past its offset.
 * Messages the old master acknowledged that never reached the replica (replication lag, or writes
 * after the promotion) are gone from the history: subscribers that had them live keep them, the
 * others never get them.
 */
async function check(s: Setup, log: Publish[], newMaster: number): Promise<Outcome> {
  const acked = log.filter((e) => e.id).map((e) => e.id!);
  const lastId = acked.at(-1)!;
  // Every subscriber is owed the last message, unless a reset's offset already covers it.
  const settled = (c: TestClient) => {
    const offset = resetOf(c)?.offset;
    return idsOf(c).includes(lastId) || (offset !== undefined && compareIds(lastId, offset) <= 0);
  };
  await waitFor('every subscriber to receive the last acknowledged message', () => s.subscribers.every(settled)).catch(() => {});
  const admin = new Redis({ port: newMaster, host: '127.0.0.1', password: s.set.env.REDIS_PASSWORD });
  const stored = new Set((await admin.xrange(`socket.io-history:{${ROOM}}`, '-', '+')).map(([id]) => id));
  admin.disconnect();
  const afterFault = log.filter((e) => e.id && GUARANTEED.includes(e.phase)).map((e) => e.id!);
  const outcome: Outcome = { lostToReplication: acked.filter((id) => !stored.has(id)), resets: 0, missingBeforeFault: 0 };
  for (const e of afterFault) assert.ok(stored.has(e), `${e}, acknowledged after the old master was gone, is on the new master`);
  for (const [i, c] of s.subscribers.entries()) {
    const ids = idsOf(c);
    const who = `subscriber ${i} (${c.socket.io.engine.transport.name}, ${c.replica})`;
    for (let k = 1; k < ids.length; k++) assert.ok(compareIds(ids[k - 1]!, ids[k]!) < 0, `${who}: in order, once (${ids[k - 1]} then ${ids[k]})`);
    outcome.resets += c.received.filter((m) => m.event === 'herald:reset').length;
    const reset = resetOf(c);
    if (reset) assert.equal(reset.code, 'history_lost', `${who}: ${JSON.stringify(reset)}`);
    const owed = (id: string) => (reset?.offset === undefined ? stored.has(id) : compareIds(id, reset.offset) > 0);
    const missing = acked.filter((id) => owed(id) && !ids.includes(id));
    assert.deepEqual(missing, [], `${who}: every message it is owed arrived (reset: ${JSON.stringify(reset)})`);
    const missingAfter = afterFault.filter((id) => !ids.includes(id) && (reset?.offset === undefined || compareIds(id, reset.offset) > 0));
    assert.deepEqual(missingAfter, [], `${who}: every message acknowledged after the old master was gone arrived`);
    if (!reset && log.some((e) => !GUARANTEED.includes(e.phase) && e.id && !ids.includes(e.id))) outcome.missingBeforeFault++;
    assert.equal(s.disconnects[i], 0, `${who} stayed connected`);
  }
  // The room without history works across replicas again: a publish on each gateway reaches every subscriber.
  for (const [k, g] of s.gateways.entries()) {
    assert.equal((await publish(g.url, { room: LIVE, event: 'live', data: k }, KEY)).status, 200);
    for (const c of s.subscribers) await c.waitFor(`live ${k} from ${g.replicaId}`, (m) => m.event === 'live' && m.data === k);
  }
  for (const g of s.gateways) assert.equal(g.process.exitCode, null, `${g.replicaId} was not restarted`);
  return outcome;
}

function report(what: string, log: Publish[], o: Outcome): void {
  const count = (p: Phase, ok: boolean) => log.filter((e) => e.phase === p && Boolean(e.id) === ok).length;
  console.log(
    `# ${what}: acknowledged before the fault ${count('before', true)}, during it ${count('switching', true)} (refused ${count('switching', false)}), ` +
      `with no master ${count('gone', true)} (refused ${count('gone', false)}), after ${count('after', true)} (refused ${count('after', false)}); ` +
      `acknowledged but not on the new master ${o.lostToReplication.length}; herald:reset ${o.resets}; subscribers without a reset missing an early message ${o.missingBeforeFault}`,
  );
}

describe('Redis Sentinel', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });
  const start = async (opts: Parameters<typeof startRedisSentinel>[0]) => {
    const set = await startRedisSentinel(opts);
    cleanup.push(() => set.stop());
    return setUp(set, (stop) => cleanup.push(stop));
  };

  it('kill -9 of the master during a publish loop: both gateways follow the promoted replica without a restart, delivery across replicas resumes, history rooms keep their guarantees', async () => {
    // Passwords on the data servers and on the Sentinels: REDIS_PASSWORD and REDIS_SENTINEL_PASSWORD.
    const s = await start({ password: 'data-password-0123', sentinelPassword: 'sentinel-password-0123' });
    const { log, newMaster } = await publishThrough(s, async (gone) => {
      const old = await s.set.killMaster();
      gone();
      return s.set.awaitFailover(old);
    });
    assert.ok(log.some((e) => e.phase === 'gone' && !e.id), 'publishes were refused while no master was reachable: the loop ran through the failover');
    report('kill -9', log, await check(s, log, newMaster));
  });

  it('SENTINEL FAILOVER with the old master still up: the gateways leave it for the promoted replica', async () => {
    const s = await start({});
    const { log, newMaster } = await publishThrough(s, async () => (await s.set.switchover()).to);
    report('switchover', log, await check(s, log, newMaster));
  });
});
