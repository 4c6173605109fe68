import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'room-budget-key-0123456789';
const BUDGET = 20;
/** A marker stream (a history room without messages) in Redis 7, measured with MEMORY USAGE: 4.4-4.8 KB. */
const STREAM_BYTES_MAX = 6 * 1024;

type Ack = { ok: boolean; room?: string; offset?: string; error?: { code: string; message: string } };

/**
 * One anonymous client address subscribing to (and leaving) history rooms that have no stream
 * yet, each of which makes herald create one in Redis: past HISTORY_NEW_ROOMS_PER_IP a minute it
 * is refused with `too_many_new_rooms`, across all its connections, while rooms that exist still
 * subscribe. Redis holds no more streams than the budget allowed, and the refusals are counted.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`new history rooms per client address (TRANSPORT=${transport})`, () => {
    let redis: RedisProcess;
    let gw: Gateway;
    let client: Redis;
    const clients: TestClient[] = [];

    before(async () => {
      redis = await startRedis();
      gw = await startGateway({
        env: {
          TRANSPORT: transport,
          REDIS_URL: redis.url,
          PUBLISH_KEYS: KEY,
          HISTORY_ROOMS: 'pub:*',
          HISTORY_NEW_ROOMS_PER_IP: String(BUDGET),
          CLIENT_RATE: '1000',
          CLIENT_BURST: '1000',
        },
      });
      client = new Redis(redis.url);
      // Its Redis connection is up (history publishes before that answer 503).
      await waitFor('the gateway ready', async () => (await getJson(`${gw.url}/readyz`)).status === 200);
    });
    after(async () => {
      for (const c of clients) c.close();
      client?.disconnect();
      await gw?.stop();
      await redis?.stop();
    });

    it('refuses new rooms past the budget with too_many_new_rooms, keeps existing ones open, and bounds Redis', async () => {
      const existing = await publish(gw.url, { room: 'pub:existing', event: 'm', data: 'first' }, KEY);
      assert.equal(existing.status, 200);
      const a = await connectClient(gw.url);
      const b = await connectClient(gw.url);
      clients.push(a, b);

      const started = Date.now();
      const outcomes: Ack[] = [];
      for (let i = 0; i < 3 * BUDGET; i++) {
        const c = i % 2 === 0 ? a : b;
        const ack = (await c.subscribe(`pub:new-${i}`)) as Ack;
        outcomes.push(ack);
        if (ack.ok) assert.equal(((await c.unsubscribe(`pub:new-${i}`)) as Ack).ok, true);
      }
      // The bucket refills at BUDGET a minute while this runs.
      const allowance = BUDGET + Math.ceil(((Date.now() - started) / 60_000) * BUDGET);
      const accepted = outcomes.filter((o) => o.ok).length;
      const refused = outcomes.filter((o) => !o.ok);
      assert.ok(accepted >= BUDGET && accepted <= allowance, `${accepted} new rooms accepted, budget ${BUDGET} (allowance ${allowance})`);
      assert.ok(refused.length > 0, 'subscribes past the budget are refused');
      for (const r of refused) {
        assert.equal(r.error?.code, 'too_many_new_rooms', JSON.stringify(r));
        assert.match(r.error!.message, /HISTORY_NEW_ROOMS_PER_IP/);
      }

      // Rooms with a stream still subscribe, on either connection of the address.
      for (const c of [a, b]) {
        const ack = (await c.subscribe('pub:existing')) as Ack;
        assert.equal(ack.ok, true, JSON.stringify(ack));
        assert.ok(ack.offset, 'the existing room answers with its position');
      }
      // A refused subscribe left nothing behind: that socket is not in the room.
      const refusedRoom = `pub:new-${outcomes.findIndex((o) => !o.ok)}`;
      assert.equal((await publish(gw.url, { room: refusedRoom, event: 'late', data: 1 }, KEY)).status, 200);
      assert.equal((await publish(gw.url, { room: 'pub:existing', event: 'late', data: 2 }, KEY)).status, 200);
      await a.waitFor('the existing room still delivers', (r) => r.event === 'late' && r.data === 2);
      assert.deepEqual(
        [...a.received, ...b.received].filter((r) => r.meta.room === refusedRoom),
        [],
        'nothing from a room whose subscribe was refused',
      );

      // Redis: the streams this address made herald create, the existing room, the refused room's publish.
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await client.scan(cursor, 'MATCH', '*history:*', 'COUNT', 1000);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
      assert.ok(keys.length <= accepted + 2, `${keys.length} history streams in Redis for ${accepted} accepted new rooms`);
      let bytes = 0;
      for (const k of keys) bytes += Number(await client.call('MEMORY', 'USAGE', k));
      assert.ok(bytes <= (allowance + 2) * STREAM_BYTES_MAX, `${bytes} bytes of history streams`);

      const metrics = await (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
      const count = (outcome: string) => Number(new RegExp(`^herald_history_room_creations_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(metrics)?.[1] ?? 0);
      assert.equal(count('created'), accepted);
      assert.equal(count('refused'), refused.length);
      console.log(`# ${transport}: ${accepted} new rooms accepted, ${refused.length} refused; Redis: ${keys.length} history keys, ${bytes} bytes`);
    });
  });
}
