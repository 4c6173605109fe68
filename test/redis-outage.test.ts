import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';

for (const transport of ['uws', 'node'] as const) {
  describe(`Redis outage and recovery (TRANSPORT=${transport})`, () => {
    let redis: RedisProcess;
    let a: Gateway;
    let b: Gateway;
    const clients: TestClient[] = [];

    before(async () => {
      redis = await startRedis();
      [a, b] = await Promise.all(
        [0, 1].map(() => startGateway({ env: { TRANSPORT: transport, REDIS_URL: redis.url, PUBLISH_KEYS: KEY } })),
      ) as [Gateway, Gateway];
      await Promise.all([a, b].map((g) => waitFor(`${g.replicaId} ready`, async () => (await getJson(`${g.url}/readyz`)).status === 200)));
    });

    after(async () => {
      for (const c of clients) c.close();
      await Promise.all([a?.stop(), b?.stop()]);
      await redis?.stop();
    });

    it('keeps serving local clients while Redis is down and resumes cross-replica delivery when it returns', async () => {
      const onA = await connectClient(a.url);
      const onB = await connectClient(b.url);
      clients.push(onA, onB);
      await onA.subscribe('live');
      await onB.subscribe('live');
      await publish(a.url, { room: 'live', event: 'm', data: 'up' }, KEY);
      await onB.waitFor('cross-replica before the outage', (r) => r.data === 'up');

      await redis.kill();
      for (const g of [a, b]) {
        const ready = await waitFor(`${g.replicaId} /readyz 503`, async () => {
          const r = await getJson(`${g.url}/readyz`);
          return r.status === 503 ? r : undefined;
        });
        assert.equal(ready.body.status, 'redis_unavailable');
        assert.equal(ready.body.redis, 'down');
        assert.equal((await getJson(`${g.url}/healthz`)).status, 200, 'alive while Redis is down');
      }

      // Local delivery continues; the lost cross-replica copy is counted, not thrown.
      const res = await publish(a.url, { room: 'live', event: 'm', data: 'during' }, KEY);
      assert.equal(res.status, 200);
      await onA.waitFor('local delivery during the outage', (r) => r.data === 'during');
      const during = await getJson(`${a.url}/readyz`);
      assert.ok(during.body.busPublishFailures >= 1, 'publish failure counted');
      assert.ok(onA.socket.connected && onB.socket.connected, 'clients stay connected');

      await redis.restart();
      for (const g of [a, b]) {
        await waitFor(`${g.replicaId} /readyz 200 again`, async () => (await getJson(`${g.url}/readyz`)).status === 200);
      }
      await publish(a.url, { room: 'live', event: 'm', data: 'a->b after' }, KEY);
      await publish(b.url, { room: 'live', event: 'm', data: 'b->a after' }, KEY);
      await onB.waitFor('cross-replica after recovery', (r) => r.data === 'a->b after');
      await onA.waitFor('cross-replica after recovery', (r) => r.data === 'b->a after');
      assert.equal(a.process.exitCode, null, 'replica A never exited');
      assert.equal(b.process.exitCode, null, 'replica B never exited');
    });

    it('starts while Redis is down, serves locally, and joins the cluster when Redis comes up', async () => {
      await redis.kill();
      const late = await startGateway({ env: { TRANSPORT: transport, REDIS_URL: redis.url, PUBLISH_KEYS: KEY } });
      try {
        const unready = await getJson(`${late.url}/readyz`);
        assert.equal(unready.status, 503);
        assert.equal(unready.body.status, 'redis_unavailable');
        const local = await connectClient(late.url);
        const remote = await connectClient(a.url);
        clients.push(local, remote);
        await local.subscribe('late');
        await remote.subscribe('late');
        assert.equal((await publish(late.url, { room: 'late', event: 'm', data: 'local only' }, KEY)).status, 200);
        await local.waitFor('local delivery before Redis exists', (r) => r.data === 'local only');

        await redis.restart();
        for (const g of [late, a]) {
          await waitFor(`${g.replicaId} ready`, async () => (await getJson(`${g.url}/readyz`)).status === 200);
        }
        await publish(late.url, { room: 'late', event: 'm', data: 'late->a' }, KEY);
        await publish(a.url, { room: 'late', event: 'm', data: 'a->late' }, KEY);
        await remote.waitFor('from the late replica', (r) => r.data === 'late->a');
        await local.waitFor('to the late replica', (r) => r.data === 'a->late');
      } finally {
        await late.stop();
      }
    });
  });
}
