import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { connectClient, getJson, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { metricValue } from './helpers/metrics.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'subscribe-refused-key-0123456789';

const metric = (gw: Gateway, series: string) => metricValue(gw.url, series, KEY);

// Sharded mode: a replica hears a room only once it subscribed the room's shard channel. When that
// SSUBSCRIBE fails, the subscribe must not answer ok (the client would wait for messages that
// never come): it is refused with `unavailable`, counted, and the socket left out of the room.
// The failure is made real with a Redis ACL user allowed only some channels.
describe('sharded mode: a subscribe whose shard channel cannot be subscribed is refused', () => {
  let redis: RedisProcess;
  let url: string;
  const gateways: Gateway[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    redis = await startRedis();
    const admin = new Redis(redis.url);
    // The adapter's own channels (the namespace's, and its 16-hex-digit uid's answers), and only
    // rooms starting with "ok:": for the others, SSUBSCRIBE answers NOPERM.
    await admin.call('ACL', 'SETUSER', 'herald', 'on', '>herald-pass', '~*', '+@all', 'resetchannels',
      '&socket.io#/#', `&socket.io#/#${'?'.repeat(16)}#`, '&socket.io#/#ok:*', '&socket.io-history#{ok:*}');
    admin.disconnect();
    url = `redis://herald:herald-pass@127.0.0.1:${redis.port}`;
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(gateways.map((g) => g.stop()));
    await redis?.stop();
  });

  for (const transport of ['uws', 'node'] as const) {
    it(`history and plain rooms alike (TRANSPORT=${transport})`, async () => {
      const gw = await startGateway({ env: { TRANSPORT: transport, REDIS_URL: url, REDIS_MODE: 'sharded', HISTORY_ROOMS: 'h:*,ok:h:*', PUBLISH_KEYS: KEY } });
      gateways.push(gw);
      await waitFor('ready', async () => (await getJson(`${gw.url}/readyz`)).status === 200);
      const c = await connectClient(gw.url);
      clients.push(c);
      const ok = (await c.subscribe('ok:h:1')) as { ok: boolean; offset?: string };
      assert.equal(ok.ok, true);
      assert.equal(typeof ok.offset, 'string');
      assert.equal(((await c.subscribe('ok:plain')) as { ok: boolean }).ok, true);

      const history = (await c.subscribe('h:1')) as { ok: boolean; error?: { code: string } };
      assert.deepEqual([history.ok, history.error?.code], [false, 'unavailable']);
      const plain = (await c.subscribe('deny:plain')) as { ok: boolean; error?: { code: string } };
      assert.deepEqual([plain.ok, plain.error?.code], [false, 'unavailable']);

      assert.equal(await metric(gw, 'herald_room_subscribe_failures_total{kind="history"}'), 1);
      assert.equal(await metric(gw, 'herald_room_subscribe_failures_total{kind="room"}'), 1);
      // In the two rooms it was answered ok for, and not in the two it was refused.
      assert.equal(await metric(gw, 'herald_subscriptions'), 2);
      await gw.waitForLog('the warning', (l) => l.level === 40 && /subscribe refused \(unavailable\)/.test(l.msg) && l.room === 'h:1');
    });
  }
});
