import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';

// The shape of a managed Redis such as Azure Cache for Redis: TLS only, password in the URL.
describe('rediss:// with a password', () => {
  let redis: RedisProcess;
  const gateways: Gateway[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    redis = await startRedis({ tls: true, password: 'p@ss word/1' });
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(gateways.map((g) => g.stop()));
    await redis?.stop();
  });

  for (const transport of ['uws', 'node'] as const) {
    it(`shares rooms between replicas over TLS (TRANSPORT=${transport})`, async () => {
      assert.match(redis.url, /^rediss:\/\/:p%40ss%20word%2F1@127\.0\.0\.1:\d+$/);
      const env = { TRANSPORT: transport, REDIS_URL: redis.url, PUBLISH_KEYS: KEY, NODE_EXTRA_CA_CERTS: redis.caFile! };
      const [a, b] = (await Promise.all([startGateway({ env }), startGateway({ env })])) as [Gateway, Gateway];
      gateways.push(a, b);
      for (const g of [a, b]) {
        await waitFor(`${g.replicaId} ready over TLS`, async () => (await getJson(`${g.url}/readyz`)).status === 200);
      }
      const c = await connectClient(b.url);
      clients.push(c);
      await c.subscribe('tls-room');
      assert.equal((await publish(a.url, { room: 'tls-room', event: 'm', data: transport }, KEY)).status, 200);
      await c.waitFor('cross-replica over TLS', (r) => r.data === transport);
    });
  }

  it('stays up and unready with a wrong password, logging the error', async () => {
    const env = {
      REDIS_URL: redis.url.replace('p%40ss%20word%2F1', 'wrong'),
      PUBLISH_KEYS: KEY,
      NODE_EXTRA_CA_CERTS: redis.caFile!,
    };
    const g = await startGateway({ env });
    gateways.push(g);
    const line = await g.waitForLog('redis error', (l) => l.msg.startsWith('redis unreachable at start') && /WRONGPASS|NOAUTH|invalid/i.test(String(l.cause)));
    assert.deepEqual([line.setting, line.reason], ['REDIS_URL', 'auth_failed']);
    const ready = await getJson(`${g.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.equal(ready.body.status, 'redis_unavailable');
    assert.equal((await getJson(`${g.url}/healthz`)).status, 200);
  });
});
