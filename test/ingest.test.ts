import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createMemoryHistory } from '../src/history/memory.js';
import { createRedisHistory } from '../src/history/redis.js';
import { createMetrics } from '../src/observability/metrics.js';
import type { HistoryBackend } from '../src/history/types.js';
import { connectClient, getJson, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
const N = 1000;
const AMQP_URL = process.env.HERALD_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** `n` clients of `gw`, each subscribed to `room`. */
async function subscribed(gw: Gateway, room: string, n: number): Promise<TestClient[]> {
  const out: TestClient[] = [];
  for (let i = 0; i < n; i++) {
    const c = await connectClient(gw.url);
    await c.subscribe(room);
    out.push(c);
  }
  return out;
}

/** Every `n` of a client's `event` messages in `room`. */
const seqOf = (c: TestClient, room: string) => c.received.filter((r) => r.meta?.room === room && r.event === 'seq').map((r) => (r.data as { n: number }).n);
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** Sums one ingest outcome over the replicas that are still up. */
async function ingestCount(gateways: Gateway[], key: string): Promise<number> {
  let total = 0;
  for (const g of gateways.filter((x) => x.process.exitCode === null && x.process.signalCode === null)) {
    total += (await getJson(`${g.url}/readyz`)).body.ingest[key] ?? 0;
  }
  return total;
}

describe('ingest from a Redis Stream consumer group', () => {
  let redis: RedisProcess;
  let producer: Redis;
  const gateways: Gateway[] = [];
  const clients: TestClient[] = [];
  const STREAM = 'events:scores';

  before(async () => {
    redis = await startRedis();
    producer = new Redis(redis.url);
    const env = { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, INGEST_STREAMS: STREAM, HISTORY_ROOMS: 'hist:*', INGEST_CLAIM_IDLE_SECONDS: '1' };
    for (const id of ['ingest-a', 'ingest-b']) gateways.push(await startGateway({ env: { ...env, REPLICA_ID: id } }));
    // The groups exist once each replica has created or found them.
    await waitFor('the consumer group', async () => ((await producer.xinfo('GROUPS', STREAM).catch(() => [])) as unknown[]).length === 1);
  });

  after(async () => {
    for (const c of clients) c.close();
    producer?.disconnect();
    await Promise.all(gateways.map((g) => g.stop()));
    await redis?.stop();
  });

  const subscribeEverywhere = async (room: string, perReplica = 2) => {
    const cs: TestClient[] = [];
    for (const g of gateways.filter((x) => x.process.exitCode === null && x.process.signalCode === null)) {
      for (let i = 0; i < perReplica; i++) {
        const c = await connectClient(g.url);
        await c.subscribe(room);
        cs.push(c);
      }
    }
    clients.push(...cs);
    return cs;
  };
  const append = async (room: string, from: number, to: number) => {
    const p = producer.pipeline();
    for (let n = from; n <= to; n++) p.xadd(STREAM, '*', 'room', room, 'event', 'seq', 'data', JSON.stringify({ n }));
    await p.exec();
  };

  it(`broadcasts ${N} appended entries to every subscriber on both replicas, acknowledging each once`, async () => {
    const subs = await subscribeEverywhere('plain:1');
    await append('plain:1', 1, N);
    await waitFor(`all ${N} everywhere`, () => subs.every((c) => seqOf(c, 'plain:1').length >= N));
    for (const c of subs) assert.deepEqual(seqOf(c, 'plain:1').sort((a, b) => a - b), range(N));
    await waitFor('nothing pending', async () => ((await producer.xpending(STREAM, 'herald')) as [number])[0] === 0);
    assert.equal(await ingestCount(gateways, 'redis-stream:delivered'), N, 'each entry published (and acknowledged) by exactly one replica');
  });

  it('claims and broadcasts entries a crashed consumer read but never acknowledged', async () => {
    const subs = await subscribeEverywhere('hist:claim', 1);
    await append('hist:claim', 1, 10);
    // What a replica that crashed right after reading leaves behind: entries pending on its name.
    // (Both live replicas may race it to the entries; whatever it got is what they must claim.)
    const got = (await producer.call('XREADGROUP', 'GROUP', 'herald', 'crashed-replica', 'COUNT', 10, 'STREAMS', STREAM, '>')) as [string, unknown[]][] | null;
    const stolen = got?.[0]?.[1].length ?? 0;
    await waitFor('all 10 delivered, the stolen ones after the claim idle time', () => subs.every((c) => seqOf(c, 'hist:claim').length === 10), 15_000);
    for (const c of subs) assert.deepEqual(seqOf(c, 'hist:claim').sort((a, b) => a - b), range(10));
    await waitFor('nothing pending', async () => ((await producer.xpending(STREAM, 'herald')) as [number])[0] === 0);
    console.log(`# stream claim: ${stolen} entries were held by a dead consumer and claimed by a live replica`);
  });

  it(`kill -9 of a replica mid-stream: subscribers of the survivor end with all ${N} of a history room, none twice`, async () => {
    const room = 'hist:kill';
    const survivor = gateways[1]!;
    const subs = await subscribed(survivor, room, 3);
    clients.push(...subs);
    // Frozen, the replica's blocked XREADGROUP is still answered by Redis: entries land on its
    // pending list and are never processed. Then it dies, as a crashed replica would.
    gateways[0]!.signal('SIGSTOP');
    await append(room, 1, N / 2);
    const pending = (await producer.xpending(STREAM, 'herald')) as [number, string, string, [string, string][] | null];
    const held = Number(pending[3]?.find(([consumer]) => consumer === 'ingest-a')?.[1] ?? 0);
    gateways[0]!.signal('SIGKILL');
    await gateways[0]!.exited();
    await append(room, N / 2 + 1, N);
    assert.ok(held > 0, 'the killed replica held unacknowledged entries');
    console.log(`# stream kill -9: the killed replica held ${held} unacknowledged entries`);
    await waitFor(`all ${N}`, () => subs.every((c) => new Set(seqOf(c, room)).size === N), 20_000);
    await waitFor('nothing pending', async () => ((await producer.xpending(STREAM, 'herald')) as [number])[0] === 0, 15_000);
    for (const c of subs) {
      const got = seqOf(c, room);
      assert.equal(got.length, N, `${got.length - new Set(got).size} duplicates`);
      assert.deepEqual([...got].sort((a, b) => a - b), range(N));
    }
    const history = (await (await fetch(`${survivor.url}/v1/rooms/${room}/history?limit=1000`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as {
      entries: unknown[];
    };
    assert.equal(history.entries.length, N, 'each entry once in the history');
  });

  it('acknowledges and counts bad entries without blocking the stream', async () => {
    const [c] = await subscribeEverywhere('plain:after-bad', 1);
    const rejectedBefore = await ingestCount(gateways, 'redis-stream:rejected');
    await producer.xadd(STREAM, '*', 'event', 'seq', 'data', '{"n":1}'); // no room
    await producer.xadd(STREAM, '*', 'room', 'plain:x', 'event', 'seq', 'data', '{not json'); // bad JSON
    await producer.xadd(STREAM, '*', 'room', 'bad room', 'event', 'seq', 'data', '{}'); // bad room
    await producer.xadd(STREAM, '*', 'room', 'plain:x', 'event', 'seq', 'data', JSON.stringify({ big: 'x'.repeat(70_000) })); // oversize
    await producer.xadd(STREAM, '*', 'room', 'plain:x', 'event', 'connect', 'data', '{}'); // reserved event
    await producer.xadd(STREAM, '*', 'room', 'plain:after-bad', 'event', 'seq', 'data', '{"n":1}');
    await c!.waitFor('the good entry after the bad ones', (r) => r.meta?.room === 'plain:after-bad');
    await waitFor('5 rejections counted', async () => (await ingestCount(gateways, 'redis-stream:rejected')) - rejectedBefore === 5);
    await waitFor('nothing pending', async () => ((await producer.xpending(STREAM, 'herald')) as [number])[0] === 0);
  });
});

describe('ingest from a RabbitMQ queue', () => {
  let redis: RedisProcess;
  let conn: ChannelModel;
  let ch: Channel;
  const gateways: Gateway[] = [];
  const clients: TestClient[] = [];
  const suffix = randomBytes(4).toString('hex');
  const exchange = `herald-test-${suffix}`;
  const queue = `herald-test-${suffix}`;

  before(async () => {
    redis = await startRedis();
    conn = await amqp.connect(AMQP_URL);
    ch = await conn.createChannel();
    await ch.assertExchange(exchange, 'topic', { durable: true });
    const env = {
      REDIS_URL: redis.url,
      PUBLISH_KEYS: KEY,
      HISTORY_ROOMS: 'hist:*',
      AMQP_URL,
      AMQP_EXCHANGE: exchange,
      AMQP_QUEUE: queue,
      AMQP_PREFETCH: '50',
    };
    for (const id of ['amqp-a', 'amqp-b']) gateways.push(await startGateway({ env: { ...env, REPLICA_ID: id } }));
    await waitFor('both replicas consuming', async () => (await ch.checkQueue(queue)).consumerCount === 2);
  });

  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(gateways.map((g) => g.stop()));
    await ch?.deleteQueue(queue).catch(() => {});
    await ch?.deleteExchange(exchange).catch(() => {});
    await conn?.close().catch(() => {});
    await redis?.stop();
  });

  const send = (room: string, from: number, to: number) => {
    for (let n = from; n <= to; n++) {
      ch.publish(exchange, room, Buffer.from(JSON.stringify({ n })), { messageId: `${room}-${n}`, headers: { 'x-herald-event': 'seq' }, timestamp: Math.floor(Date.now() / 1000) });
    }
  };

  it(`broadcasts ${N} messages to every subscriber on both replicas`, async () => {
    const subs: TestClient[] = [];
    for (const g of gateways) for (let i = 0; i < 2; i++) {
      const c = await connectClient(g.url);
      await c.subscribe('plain:amqp');
      subs.push(c);
    }
    clients.push(...subs);
    send('plain:amqp', 1, N);
    await waitFor(`all ${N}`, () => subs.every((c) => seqOf(c, 'plain:amqp').length >= N));
    for (const c of subs) assert.deepEqual(seqOf(c, 'plain:amqp').sort((a, b) => a - b), range(N));
    await waitFor('queue drained', async () => (await ch.checkQueue(queue)).messageCount === 0);
    assert.equal(await ingestCount(gateways, 'amqp:delivered'), N);
  });

  it('kill -9 of a replica with unacknowledged messages: the other broadcasts them, none twice in a history room', async () => {
    const room = 'hist:amqp-kill';
    const survivor = gateways[1]!;
    const subs = await subscribed(survivor, room, 3);
    clients.push(...subs);
    send(room, 1, N);
    // Killed while messages are still flowing (each replica holds up to 50 unacknowledged).
    await waitFor('the stream to be under way', () => seqOf(subs[0]!, room).length >= 100);
    gateways[0]!.signal('SIGKILL');
    await waitFor(`all ${N}`, () => subs.every((c) => new Set(seqOf(c, room)).size === N), 20_000);
    for (const c of subs) {
      const got = seqOf(c, room);
      assert.equal(got.length, N, `${got.length - new Set(got).size} duplicates`);
    }
    await waitFor('queue drained', async () => {
      const q = await ch.checkQueue(queue);
      return q.messageCount === 0 && q.consumerCount === 1;
    });
  });

  it('acknowledges and counts bad messages without blocking the queue', async () => {
    const c = await connectClient(gateways[1]!.url);
    clients.push(c);
    await c.subscribe('plain:amqp-after');
    const before = await ingestCount(gateways, 'amqp:rejected');
    ch.publish(exchange, 'plain:x', Buffer.from('{not json'));
    ch.publish(exchange, 'bad room', Buffer.from('{}'));
    ch.publish(exchange, 'plain:x', Buffer.from(JSON.stringify({ big: 'x'.repeat(70_000) })));
    ch.publish(exchange, 'plain:amqp-after', Buffer.from('{"ok":true}'));
    await c.waitFor('the good message after the bad ones', (r) => r.meta?.room === 'plain:amqp-after');
    await waitFor('3 rejections counted', async () => (await ingestCount(gateways, 'amqp:rejected')) - before === 3);
    await waitFor('queue drained', async () => (await ch.checkQueue(queue)).messageCount === 0);
  });
});

describe('dedupe keys in history rooms (what makes re-delivered ingest entries appear once)', () => {
  let redis: RedisProcess;
  let clients: Redis[] = [];
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await redis?.stop();
  });

  for (const kind of ['memory', 'redis'] as const) {
    it(`${kind}: a key published once is not appended or broadcast again`, async () => {
      let backend: HistoryBackend;
      if (kind === 'redis') {
        const [pub, sub] = [new Redis(redis.url), new Redis(redis.url)];
        clients.push(pub, sub);
        const keyPrefix = `t${randomBytes(3).toString('hex')}`;
        backend = createRedisHistory({ pub, sub, keyPrefix, sharded: false, logger: pino({ level: 'silent' }), metrics: createMetrics() });
        await waitFor('the history channel subscribed', async () => ((await pub.pubsub('NUMSUB', `${keyPrefix}-history#`)) as [string, number])[1] === 1);
      } else {
        backend = createMemoryHistory();
      }
      const broadcast: string[] = [];
      backend.onEntry((e) => broadcast.push(e.id));
      const policy = { size: 100, ttlSeconds: 60 };
      const first = await backend.publish('hist:d', 'seq', { n: 1 }, policy, 'events:scores/1-0');
      const again = await backend.publish('hist:d', 'seq', { n: 1 }, policy, 'events:scores/1-0');
      const other = await backend.publish('hist:d', 'seq', { n: 2 }, policy, 'events:scores/2-0');
      assert.deepEqual([first.duplicate, again.duplicate, other.duplicate], [false, true, false]);
      assert.equal(again.entry.id, first.entry.id, 'the duplicate answers with the first id');
      await waitFor('two broadcasts', () => broadcast.length === 2);
      assert.deepEqual(broadcast, [first.entry.id, other.entry.id]);
      assert.deepEqual((await backend.read('hist:d', undefined, 10)).entries.map((e) => e.id), [first.entry.id, other.entry.id]);
    });
  }
});
