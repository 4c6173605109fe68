import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { io as connect, type Socket } from 'socket.io-client';
import { connectClient, publish, type TestClient } from './helpers/clients.js';
import { startBackend, type Gateway } from './helpers/gateway.js';
import { rawSocket } from './helpers/raw.js';
import type { RedisProcess } from './helpers/redis.js';
import { onceWithin, waitFor } from './helpers/wait.js';

const KEY = 'recovery-restores-key-0123456789';
/** Session restores one address may start per minute in these tests. */
const RESTORES = 5;
const ATTACK_CONNECTIONS = 10;
const FRAMES_PER_CONNECTION = 200;
/**
 * Reads of one session lookup that finds none: the first only. The offsets below (`x.1`) name no
 * living replica, so there is no second look (recovery.ts RETAKE_MS).
 */
const READS_PER_LOOKUP = 1;

async function outcomes(gw: Gateway): Promise<Record<string, number>> {
  const text = await (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^herald_session_recovery_total\{outcome="(\w+)"\} (\d+)$/gm)) counts[m[1]!] = Number(m[2]);
  return counts;
}

/** Session reads Redis served (GET by a restore, GETDEL by a take), from INFO commandstats. */
async function sessionReads(redis: RedisProcess | undefined): Promise<number> {
  if (!redis) return 0;
  const r = new Redis(redis.url);
  try {
    const info = await r.info('commandstats');
    const calls = (cmd: string) => Number(new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
    return calls('get') + calls('getdel');
  } finally {
    r.disconnect();
  }
}

const from = (address: string) => ({ 'x-forwarded-for': address });

/**
 * A CONNECT with a recovery `pid` costs a session lookup, which Socket.IO runs before any
 * middleware. herald allows one per Engine.IO connection and RECOVERY_RESTORES_PER_IP per
 * address, closes the connection at a second CONNECT before any lookup, and a restore it does
 * not look up leaves the stored session to its owner.
 */
for (const store of ['redis', 'memory'] as const) {
  for (const transport of ['uws', 'node'] as const) {
    describe(`session restores are bounded per connection and per address (${store} store, TRANSPORT=${transport})`, () => {
      let gateways: Gateway[];
      let redis: RedisProcess | undefined;
      let member: TestClient;

      before(async () => {
        ({ gateways, redis } = await startBackend(store, {
          TRANSPORT: transport,
          PUBLISH_KEYS: KEY,
          HISTORY_ROOMS: 'h:*',
          PUBLIC_ROOMS: 'h:*',
          ALLOW_ANONYMOUS: 'true',
          TRUST_PROXY: '1',
          RECOVERY_RESTORES_PER_IP: String(RESTORES),
        }));
        member = await connectClient(gateways[0]!.url, { extraHeaders: from('10.0.0.9') });
        assert.equal(((await member.subscribe('h:member')) as { ok: boolean }).ok, true);
      });
      after(async () => {
        member?.close();
        for (const g of gateways ?? []) await g.stop();
        await redis?.stop();
      });

      it('a burst of CONNECTs with a pid costs at most one lookup per connection, within the address budget, and closes the connection', async () => {
        const gw = gateways[0]!;
        const before = await outcomes(gw);
        const readsBefore = await sessionReads(redis);
        const sockets = await Promise.all(Array.from({ length: ATTACK_CONNECTIONS }, () => rawSocket(gw.url, { headers: from('10.0.0.2') })));
        for (const raw of sockets) {
          const frames = Array.from({ length: FRAMES_PER_CONNECTION }, () => `40${JSON.stringify({ pid: randomBytes(15).toString('base64url'), offset: 'x.1' })}`);
          for (const f of frames) raw.send(f);
        }
        const codes = await Promise.all(sockets.map((s) => s.closed));
        assert.equal(codes.length, ATTACK_CONNECTIONS, 'every attacking connection is closed');
        // Each connection's first CONNECT was looked up or refused a lookup; nothing else was.
        const counted = await waitFor('every first CONNECT counted', async () => {
          const now = await outcomes(gw);
          const d = (k: string) => (now[k] ?? 0) - (before[k] ?? 0);
          return d('not_found') + d('rate_limited') >= ATTACK_CONNECTIONS ? { notFound: d('not_found'), rateLimited: d('rate_limited') } : undefined;
        });
        assert.equal(counted.notFound + counted.rateLimited, ATTACK_CONNECTIONS, JSON.stringify(counted));
        // The budget (RESTORES a minute) may have refilled by one while the test ran.
        assert.ok(counted.notFound >= RESTORES && counted.notFound <= RESTORES + 1, JSON.stringify(counted));
        const reads = (await sessionReads(redis)) - readsBefore;
        assert.ok(reads <= (RESTORES + 1) * READS_PER_LOOKUP, `${reads} session reads in Redis`);
        console.log(`# ${store}/${transport}: ${ATTACK_CONNECTIONS * FRAMES_PER_CONNECTION} CONNECTs with a pid -> lookups ${counted.notFound}, rate_limited ${counted.rateLimited}${redis ? `, Redis session reads ${reads}` : ''}`);

        // Other clients are served.
        await publish(gw.url, { room: 'h:member', event: 'm', data: 'after the attack' }, KEY);
        await member.waitFor('the message after the attack', (r) => r.data === 'after the attack');
      });

      it("a restore past the address budget starts afresh and leaves the session to its owner, who restores it", async () => {
        const gw = gateways[0]!;
        const victim = connect(gw.url, { transports: ['websocket'], forceNew: true, reconnection: false, extraHeaders: from('10.0.0.1') });
        await onceWithin(victim, 'connect', 'victim connect');
        assert.equal(((await victim.timeout(5000).emitWithAck('subscribe', 'h:victim')) as { ok: boolean }).ok, true);
        const sid = victim.id;
        await drop(victim);
        const { _pid: pid, _lastOffset: offset } = victim as unknown as { _pid: string; _lastOffset: string };
        // 10.0.0.2 spent its budget above (or spends it now).
        for (let i = 0; i <= RESTORES + 1; i++) {
          const raw = await rawSocket(gw.url, { headers: from('10.0.0.2') });
          raw.send(`40${JSON.stringify({ pid: randomBytes(15).toString('base64url'), offset: 'x.1' })}`);
          await raw.next((f) => f.startsWith('40') || f.startsWith('44'));
          raw.close();
        }
        const before = await outcomes(gw);
        const thief = await rawSocket(gw.url, { headers: from('10.0.0.2') });
        thief.send(`40${JSON.stringify({ pid, offset })}`);
        const answer = await thief.next((f) => f.startsWith('40') || f.startsWith('44'));
        thief.close();
        assert.ok(answer !== undefined && answer.startsWith('40{'), `a fresh session: ${answer}`);
        assert.ok(!answer.includes(sid!), 'not the victim\'s socket id');
        assert.equal(((await outcomes(gw)).rate_limited ?? 0) - (before.rate_limited ?? 0), 1);
        const back = onceWithin(victim, 'connect', 'victim reconnect');
        victim.connect();
        await back;
        assert.equal(victim.recovered, true, 'the owner gets its session back');
        assert.equal(victim.id, sid);
        victim.close();
      });
    });
  }
}

/** Drops the connection as a network failure would (the server sees "transport close"), and waits until it is gone. */
async function drop(socket: Socket): Promise<void> {
  const gone = onceWithin(socket, 'disconnect', 'disconnect');
  (socket.io.engine as unknown as { close(): void }).close();
  await gone;
}
