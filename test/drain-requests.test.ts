import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { freePort } from './helpers/ports.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
/** Longer than the drain's bound on closing Redis (BUS_CLOSE_TIMEOUT_MS, 2 s), shorter than REDIS_TIMEOUT_SECONDS. */
const PAUSE_MS = 4000;

/** POSTs `body` as a publish; the reply's status, body and `Connection` header. */
function post(url: string, body: unknown): Promise<{ status: number; body: unknown; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) as unknown, connection: res.headers.connection }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

async function inFlight(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('herald_http_requests_in_flight '));
  assert.ok(line, 'herald_http_requests_in_flight is exported');
  return Number(line.split(' ').at(-1));
}

for (const transport of ['uws', 'node'] as const) {
  describe(`a drain answers the HTTP requests in flight (TRANSPORT=${transport})`, () => {
    let redis: RedisProcess;
    let admin: Redis;
    let leaving: Gateway;
    let staying: Gateway;
    let metricsPort: number;

    before(async () => {
      redis = await startRedis();
      admin = new Redis(redis.url);
      metricsPort = await freePort();
      const env = { TRANSPORT: transport, REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'news:*', DRAIN_SECONDS: '1', REDIS_TIMEOUT_SECONDS: '10' };
      [leaving, staying] = (await Promise.all([
        startGateway({ env: { ...env, METRICS_PORT: String(metricsPort) } }),
        startGateway({ env }),
      ])) as [Gateway, Gateway];
      // The publish below needs Redis: wait until both replicas say they are ready.
      for (const gw of [leaving, staying]) await waitFor('the replica ready', async () => (await fetch(`${gw.url}/readyz`)).status === 200);
    });

    after(async () => {
      admin?.disconnect();
      await Promise.all([leaving?.stop(), staying?.stop()]);
      await redis?.stop();
    });

    it('a publish waiting on Redis when SIGTERM arrives is answered before the replica exits, and kept once', async () => {
      // Redis holds every write for PAUSE_MS: the publish (an append to the room's history) waits.
      await admin.call('CLIENT', 'PAUSE', String(PAUSE_MS), 'WRITE');
      const pending = post(`${leaving.url}/v1/publish`, { room: 'news:a', event: 'item', data: { n: 1 } });
      await waitFor('the publish in flight', async () => (await inFlight(metricsPort)) === 1);

      leaving.signal('SIGTERM');
      await leaving.waitForLog('draining', (l) => l.msg === 'draining');

      const res = await pending;
      assert.equal(res.status, 200, `the publish was answered: ${JSON.stringify(res.body)}`);
      // Answered while draining: the reply closes its connection, so the client's next request
      // goes to the balancer rather than down a connection the exit would reset.
      assert.equal(res.connection, 'close');
      const id = (res.body as { ids: Record<string, string> }).ids['news:a'];
      assert.ok(id);
      assert.equal(await leaving.exited(), 0);
      const drained = await leaving.waitForLog('drained', (l) => l.msg === 'drained');
      assert.ok(drained);

      const history = await fetch(`${staying.url}/v1/rooms/news%3Aa/history`, { headers: { authorization: `Bearer ${KEY}` } });
      assert.equal(history.status, 200);
      const ids = ((await history.json()) as { entries: { id: string }[] }).entries.map((e) => e.id);
      assert.deepEqual(ids, [id]);
    });
  });
}
