import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { onceWithin, waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
const CLIENTS = 8;

for (const transport of ['uws', 'node'] as const) {
  describe(`graceful drain on SIGTERM (TRANSPORT=${transport})`, () => {
    let redis: RedisProcess;
    let leaving: Gateway;
    let staying: Gateway;
    const clients: TestClient[] = [];

    before(async () => {
      redis = await startRedis();
      const env = { TRANSPORT: transport, REDIS_URL: redis.url, PUBLISH_KEYS: KEY, DRAIN_SECONDS: '2' };
      [leaving, staying] = (await Promise.all([startGateway({ env }), startGateway({ env })])) as [Gateway, Gateway];
    });

    after(async () => {
      for (const c of clients) c.close();
      await Promise.all([leaving?.stop(), staying?.stop()]);
      await redis?.stop();
    });

    it('flips readiness, refuses new clients, closes the connected ones so they reconnect elsewhere, exits 0', async () => {
      for (let i = 0; i < CLIENTS; i++) {
        // Reconnection on, as browsers have it: the test only changes where the next attempt goes,
        // which is what the load balancer does.
        const c = await connectClient(leaving.url, { reconnection: true, transport: i % 2 ? 'polling' : 'websocket' });
        await c.subscribe('feed');
        c.socket.on('connect', () => void c.subscribe('feed'));
        clients.push(c);
      }
      const reconnected: Promise<unknown>[] = [];
      const reasons = clients.map((c) =>
        onceWithin<[string]>(c.socket, 'disconnect', 'disconnect').then(([reason]) => {
          (c.socket.io as unknown as { uri: string }).uri = staying.url;
          reconnected.push(onceWithin(c.socket, 'connect', 'reconnect to the other replica'));
          return reason;
        }),
      );

      leaving.signal('SIGTERM');
      await leaving.waitForLog('draining', (l) => l.msg === 'draining');
      const ready = await getJson(`${leaving.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal(ready.body.status, 'draining');
      assert.equal((await getJson(`${leaving.url}/healthz`)).status, 200);
      await assert.rejects(connectClient(leaving.url), 'a new client is refused while draining');

      // "transport close" is the reason socket.io-client reconnects on by itself.
      assert.deepEqual(await Promise.all(reasons), Array(CLIENTS).fill('transport close'));
      assert.equal(await leaving.exited(), 0);
      const drained = await leaving.waitForLog('drained', (l) => l.msg === 'drained');
      assert.equal(drained.closed, CLIENTS);

      await Promise.all(reconnected);
      const res = await publish(staying.url, { room: 'feed', event: 'after', data: 1 }, KEY);
      assert.equal(res.status, 200);
      await Promise.all(clients.map((c) => c.waitFor('message after reconnecting', (r) => r.event === 'after')));
      assert.equal((await getJson(`${staying.url}/readyz`)).body.connections, CLIENTS);
    });
  });
}

/**
 * DRAIN_DELAY_SECONDS: a balancer that learns of a drain from its health check keeps sending
 * clients, the drained ones reconnecting among them, until it has marked the replica down. During
 * the delay readiness is 503 and the replica still takes them; only then does it refuse and close.
 */
describe('DRAIN_DELAY_SECONDS: not ready at once, refusing and closing only after the delay', () => {
  let redis: RedisProcess;
  let gw: Gateway;
  const clients: TestClient[] = [];

  before(async () => {
    redis = await startRedis();
    gw = await startGateway({ env: { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, DRAIN_SECONDS: '1', DRAIN_DELAY_SECONDS: '2' } });
  });

  after(async () => {
    for (const c of clients) c.close();
    await gw?.stop();
    await redis?.stop();
  });

  it('answers /readyz 503 and still accepts a client during the delay; then closes both and exits 0', async () => {
    const early = await connectClient(gw.url);
    clients.push(early);
    const closed = [early].map((c) => onceWithin<[string]>(c.socket, 'disconnect', 'disconnect'));

    gw.signal('SIGTERM');
    const ready = await waitFor('/readyz 503 after SIGTERM', async () => {
      const r = await getJson(`${gw.url}/readyz`);
      return r.status === 503 ? r : undefined;
    });
    assert.equal(ready.body.status, 'draining');
    // What a balancer that has not seen the 503 yet sends here: a reconnecting client, accepted.
    const late = await connectClient(gw.url);
    clients.push(late);
    assert.deepEqual(await late.subscribe('feed'), { ok: true, room: 'feed' });
    closed.push(onceWithin<[string]>(late.socket, 'disconnect', 'disconnect'));

    await gw.waitForLog('draining', (l) => l.msg === 'draining');
    await assert.rejects(connectClient(gw.url), 'refused once the delay is over');
    assert.deepEqual((await Promise.all(closed)).map(([reason]) => reason), ['transport close', 'transport close']);
    assert.equal(await gw.exited(), 0);
    assert.equal((await gw.waitForLog('drained', (l) => l.msg === 'drained')).closed, 2);
  });
});
