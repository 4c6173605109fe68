import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { compareIds } from '../src/protocol/ids.js';
import { connectClient, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { startRedisCluster } from './helpers/redis-cluster.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
const ROOM = 'feed:gaps';
const SUBSCRIBERS = 20;
const MESSAGES = 150;
/** The publisher's pace: 50 messages a second, as in the field report. */
const PUBLISH_INTERVAL_MS = 20;
/** Faults at these message numbers. */
const FAULTS_AT = [40, 80, 120];

interface Run {
  gateways: Gateway[];
  subscribers: TestClient[];
  /** Ids the publisher got 200 for, in publish order. */
  acked: string[];
  failed: number;
}

/**
 * Two replicas (uWS and node transports) with history rooms, subscribers on both over WebSocket
 * and long-polling that stay connected throughout, and a steady publisher; `fault` runs at each
 * of FAULTS_AT. The subscribers never resubscribe: whatever they get, herald delivered live.
 */
async function run(redisEnv: Record<string, string>, fault: (r: Run) => Promise<void>, onFailure?: (r: Run) => Promise<void>): Promise<Run> {
  const env = { ...redisEnv, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'feed:*' };
  const gateways = await Promise.all(['uws', 'node'].map((TRANSPORT) => startGateway({ env: { ...env, TRANSPORT } })));
  const r: Run = { gateways, subscribers: [], acked: [], failed: 0 };
  r.subscribers = await Promise.all(
    Array.from({ length: SUBSCRIBERS }, (_, i) => connectClient(gateways[i % 2]!.url, { transport: i % 4 < 2 ? 'websocket' : 'polling' })),
  );
  for (const s of r.subscribers) assert.equal(((await s.subscribe(ROOM)) as { ok: boolean }).ok, true);
  for (let n = 1; n <= MESSAGES; n++) {
    if (FAULTS_AT.includes(n)) await fault(r);
    const res = await publish(gateways[n % 2]!.url, { room: ROOM, event: 'seq', data: n }, KEY).catch(() => undefined);
    if (res?.status === 200) r.acked.push(res.body.ids[ROOM] as string);
    else {
      r.failed++;
      await onFailure?.(r);
    }
    await delay(PUBLISH_INTERVAL_MS);
  }
  // One last acknowledged message, once Redis answers again.
  for (;;) {
    const res = await publish(gateways[0]!.url, { room: ROOM, event: 'seq', data: 'end' }, KEY);
    if (res.status === 200) {
      r.acked.push(res.body.ids[ROOM] as string);
      break;
    }
    await onFailure?.(r);
  }
  return r;
}

/**
 * `kill -9` of Redis at each of the first `count` faults, restarted once a few publishes were
 * refused: long enough an outage to matter.
 */
function outages(redis: RedisProcess, count: number) {
  let kills = 0;
  let refusedWhileDown: number | undefined;
  return {
    async fault() {
      if (++kills > count) return;
      await redis.kill();
      refusedWhileDown = 0;
    },
    async onFailure() {
      if (refusedWhileDown === undefined || ++refusedWhileDown < 5) return;
      refusedWhileDown = undefined;
      await redis.restart();
    },
  };
}

const idsOf = (c: TestClient) => c.received.filter((m) => m.event === 'seq').map((m) => m.meta.id);

/** Waits for every subscriber to hold the last acknowledged id; the assertions after say what is wrong if one never does. */
async function settle(r: Run): Promise<void> {
  const lastId = r.acked.at(-1)!;
  await waitFor('every subscriber to receive the last message', () => r.subscribers.every((s) => idsOf(s).includes(lastId))).catch(() => {});
}

async function metric(gateways: Gateway[], name: string): Promise<number> {
  let sum = 0;
  for (const g of gateways) {
    const text = await fetch(`${g.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } }).then((res) => res.text());
    for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

function assertExactlyAcked(r: Run): void {
  const short = r.subscribers.map((s, i) => `${i}@${s.replica}: ${r.acked.filter((id) => !idsOf(s).includes(id)).length}`);
  const logs = r.gateways.flatMap((g) => g.logs.filter((l) => l.level >= 30 && /gap|refill|reset|redis/.test(l.msg)).map((l) => `${g.replicaId} ${l.msg} ${JSON.stringify(l)}`));
  const context = `missing per subscriber: ${short.join(', ')}\n${logs.join('\n')}`;
  for (const [i, s] of r.subscribers.entries()) {
    const got = idsOf(s);
    const missing = r.acked.filter((id) => !got.includes(id));
    assert.deepEqual(got, r.acked, `subscriber ${i} (${s.socket.io.engine.transport.name}, replica ${s.replica}): ${missing.length} missing ${JSON.stringify(missing.slice(0, 10))}\n${context}`);
    assert.ok(!s.received.some((m) => m.event === 'herald:reset'), `subscriber ${i} was told to reload`);
    assert.ok(s.socket.connected, `subscriber ${i} stayed connected`);
  }
}

describe('history rooms: no acknowledged message lost when Redis drops the pub/sub connections', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });
  const track = (r: Run, stop: () => Promise<void>) => {
    cleanup.push(async () => {
      for (const s of r.subscribers) s.close();
      await Promise.all(r.gateways.map((g) => g.stop()));
      await stop();
    });
  };

  /** Where Redis is, how to cut every pub/sub connection, and how to stop it. */
  const targets: [string, () => Promise<{ env: Record<string, string>; ports: number[]; stop: () => Promise<void> }>][] = [
    ['classic adapter', async () => {
      const redis = await startRedis();
      return { env: { REDIS_URL: redis.url }, ports: [redis.port], stop: () => redis.stop() };
    }],
    ['sharded pub/sub on one Redis', async () => {
      const redis = await startRedis();
      return { env: { REDIS_URL: redis.url, REDIS_MODE: 'sharded' }, ports: [redis.port], stop: () => redis.stop() };
    }],
    ['sharded pub/sub on a Redis Cluster', async () => {
      const cluster = await startRedisCluster(3, 0);
      return {
        env: { REDIS_MODE: 'sharded', REDIS_CLUSTER_NODES: cluster.urls.join(',') },
        ports: cluster.nodes.map((n) => n.port),
        stop: () => cluster.stop(),
      };
    }],
  ];
  for (const [name, start] of targets) {
    it(`${name}: CLIENT KILL TYPE pubsub three times during a steady publish; every subscriber gets every acknowledged message once, in order`, async () => {
      const target = await start();
      const admins = target.ports.map((port) => new Redis({ port, host: '127.0.0.1' }));
      const r = await run(target.env, async () => {
        let killed = 0;
        for (const a of admins) killed += (await a.client('KILL', 'TYPE', 'pubsub')) as number;
        assert.ok(killed >= 2, `killed ${killed} pub/sub connections`);
      });
      for (const a of admins) a.disconnect();
      track(r, target.stop);
      await settle(r);
      assert.equal(r.failed, 0, 'Redis kept answering publishes');
      assertExactlyAcked(r);
      assert.ok((await metric(r.gateways, 'herald_history_refilled_messages_total')) > 0, 'messages pub/sub lost were refilled from the stream');
    });
  }

  it('kill -9 of Redis and a restart with its data: every acknowledged message arrives once, in order', async () => {
    const redis = await startRedis({ persist: true });
    const outage = outages(redis, FAULTS_AT.length);
    const r = await run({ REDIS_URL: redis.url }, outage.fault, outage.onFailure);
    track(r, () => redis.stop());
    await settle(r);
    assert.ok(r.failed >= 3 * 5, `publishes were refused during the outages (${r.failed})`);
    assertExactlyAcked(r);
  });

  it('kill -9 of Redis and a restart without its data: subscribers are told to reload, then get every later message once, in order', async () => {
    const redis = await startRedis();
    // One outage is enough here: after it the room's history starts over.
    const outage = outages(redis, 1);
    const r = await run({ REDIS_URL: redis.url }, outage.fault, outage.onFailure);
    track(r, () => redis.stop());
    await settle(r);
    for (const [i, s] of r.subscribers.entries()) {
      const resets = s.received.filter((m) => m.event === 'herald:reset');
      assert.equal(resets.length, 1, `subscriber ${i} told once`);
      const reset = resets[0]!.data as { room: string; code: string; offset: string };
      assert.deepEqual([reset.room, reset.code], [ROOM, 'history_lost']);
      assert.match(reset.offset, /^\d+-\d+$/);
      const at = s.received.indexOf(resets[0]!);
      const before = s.received.slice(0, at).filter((m) => m.event === 'seq').map((m) => m.meta.id);
      const afterReset = s.received.slice(at + 1).filter((m) => m.event === 'seq').map((m) => m.meta.id);
      assert.deepEqual(before, r.acked.filter((id) => before.includes(id)), `subscriber ${i}: what came before the reset came in order, once`);
      assert.deepEqual(afterReset, r.acked.filter((id) => compareIds(id, reset.offset) > 0), `subscriber ${i}: everything after the offset, in order, once`);
    }
    assert.ok((await metric(r.gateways, 'herald_history_resets_total{code="history_lost"}')) >= 2, 'each replica counted its reset');
  });
});
