import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Emitter } from '@socket.io/redis-emitter';
import { Redis } from 'ioredis';
import { connectClient, getJson, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { metricValue } from './helpers/metrics.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';
import { compareIds, isStreamId } from '../src/protocol/ids.js';

const KEY = 'emitter-test-key-0123456789';

const metric = (gw: Gateway, series: string) => metricValue(gw.url, series, KEY);

// @socket.io/redis-emitter publishes on the adapter's channel, past history: a history room would
// get a message that is in no stream, with a meta.id `since` refuses. herald does not deliver it
// there (it does to the other rooms it names), counts it and says so in the log; the Streams
// ingest is the way into Redis that keeps history.
describe('@socket.io/redis-emitter and history rooms', () => {
  let redis: RedisProcess;
  let emitterRedis: Redis;
  let emitter: Emitter;
  const gateways: Gateway[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    redis = await startRedis();
    emitterRedis = new Redis(redis.url);
    emitter = new Emitter(emitterRedis);
  });
  after(async () => {
    for (const c of clients) c.close();
    emitterRedis?.disconnect();
    await Promise.all(gateways.map((g) => g.stop()));
    await redis?.stop();
  });

  for (const transport of ['uws', 'node'] as const) {
    it(`is not delivered into a history room, and is counted and logged; other rooms get it (TRANSPORT=${transport})`, async () => {
      const stream = `events:${transport}`;
      const gw = await startGateway({
        env: { TRANSPORT: transport, REDIS_URL: redis.url, HISTORY_ROOMS: 'h:*', PUBLISH_KEYS: KEY, INGEST_STREAMS: stream, INGEST_GROUP: `herald-${transport}` },
      });
      gateways.push(gw);
      await waitFor('ready', async () => (await getJson(`${gw.url}/readyz`)).status === 200);
      const inHistory = await connectClient(gw.url);
      const inBoth = await connectClient(gw.url);
      clients.push(inHistory, inBoth);
      const room = `h:${transport}`;
      const plain = `plain:${transport}`;
      assert.equal(((await inHistory.subscribe(room)) as { ok: boolean }).ok, true);
      for (const r of [room, plain]) assert.equal(((await inBoth.subscribe(r)) as { ok: boolean }).ok, true);

      emitter.to(room).emit('m', 'emitted into history', { room, id: crypto.randomUUID(), ts: Date.now() });
      emitter.to(room).to(plain).emit('m', 'emitted into both', { room: plain, id: crypto.randomUUID(), ts: Date.now() });
      // One connection, in order: once this arrives, the two above have been handled.
      emitter.to(plain).emit('m', 'marker', { room: plain, id: crypto.randomUUID(), ts: Date.now() });
      await inBoth.waitFor('the marker', (r) => r.data === 'marker');

      assert.deepEqual(inHistory.received.map((r) => r.data), [], 'nothing that bypassed history reaches the history room');
      assert.deepEqual(inBoth.received.map((r) => r.data), ['emitted into both', 'marker'], 'the plain room still gets what names it');
      assert.equal(await metric(gw, 'herald_history_broadcasts_refused_total'), 2);
      const warning = await gw.waitForLog('the warning', (l) => l.level === 40 && /bypassed history/.test(l.msg));
      assert.deepEqual([warning.rooms, warning.sender], [[room], 'emitter']);
      assert.match(warning.msg, /POST \/v1\/publish/);
      assert.match(warning.msg, /INGEST_STREAMS/);

      // The documented way into Redis that keeps history: a stream of INGEST_STREAMS.
      await emitterRedis.xadd(stream, '*', 'room', room, 'event', 'm', 'data', '"from the stream"');
      const got = await inHistory.waitFor('the stream entry', (r) => r.data === 'from the stream');
      assert.ok(isStreamId(got.meta.id), `meta.id is a stream offset: ${got.meta.id}`);
      const page = await fetch(`${gw.url}/v1/rooms/${room}/history`, { headers: { authorization: `Bearer ${KEY}` } }).then((r) => r.json() as Promise<{ entries: { id: string; data: unknown }[] }>);
      assert.deepEqual(page.entries.map((e) => e.data), ['from the stream'], 'in the history, which has nothing of the emitter');
      // ... and usable as `since` by the next subscribe.
      const again = await connectClient(gw.url);
      clients.push(again);
      const ack = (await again.subscribe({ room, since: got.meta.id })) as { ok: boolean; recovered?: boolean; offset?: string };
      assert.deepEqual([ack.ok, ack.recovered], [true, true]);
      assert.equal(compareIds(ack.offset!, got.meta.id), 0);
    });
  }
});
