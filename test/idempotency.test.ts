import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { after, before, describe, it } from 'node:test';
import { startBackend, type Gateway } from './helpers/gateway.js';
import { post } from './helpers/publisher.js';
import type { RedisProcess } from './helpers/redis.js';

const KEY = 'idempotency-test-key-0123456789';

for (const backend of ['memory', 'redis'] as const) {
  describe(`POST /v1/publish with Idempotency-Key (${backend})`, () => {
    let gateways: Gateway[];
    let redis: RedisProcess | undefined;

    before(async () => {
      ({ gateways, redis } = await startBackend(backend, { PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'h:*' }));
    });
    after(async () => {
      await Promise.all(gateways.map((g) => g.stop()));
      await redis?.stop();
    });

    it('publishes a history room once per key, on whichever replica the retry lands', async () => {
      const [first, second] = [gateways[0]!, gateways.at(-1)!];
      const body = { rooms: ['h:1', 'plain:1'], event: 'm', data: 'once' };
      const a = await post(first.url, KEY, body, 5000, 'order-17');
      const b = await post(second.url, KEY, body, 5000, 'order-17');
      assert.equal(a.status, 200);
      assert.equal(a.body.duplicate, undefined);
      assert.deepEqual([b.status, b.body.duplicate, b.body.ids['h:1']], [200, true, a.body.ids['h:1']]);
      assert.notEqual(b.body.ids['plain:1'], a.body.ids['plain:1'], 'rooms without history publish every attempt');
      const c = await post(first.url, KEY, body, 5000, 'order-18');
      assert.notEqual(c.body.ids['h:1'], a.body.ids['h:1'], 'another key publishes again');
      const history = await fetch(`${first.url}/v1/rooms/h:1/history`, { headers: { authorization: `Bearer ${KEY}` } });
      assert.equal(((await history.json()) as { entries: unknown[] }).entries.length, 2);
      if (redis) {
        // Each key is kept for the room's history TTL (HISTORY_TTL_SECONDS, 600 here), no longer.
        const r = new Redis(redis.url);
        try {
          const ttl = await r.ttl('socket.io-dedupe:{h:1}:key:order-17');
          assert.ok(ttl > 0 && ttl <= 600, `TTL ${ttl}`);
        } finally {
          r.disconnect();
        }
      }
    });

    it('refuses a key that is not 1-128 visible ASCII characters', async () => {
      for (const key of ['x'.repeat(129), 'with space', 'é']) {
        const r = await post(gateways[0]!.url, KEY, { room: 'h:1', event: 'm', data: 1 }, 5000, key).catch((err: Error) => ({ status: -1, body: err.message }));
        // fetch itself refuses a header value outside Latin-1; herald refuses the rest.
        if (r.status !== -1) assert.deepEqual([r.status, r.body.error.code], [400, 'bad_request'], key);
      }
    });
  });
}
