import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { getJson } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { freePort } from './helpers/ports.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';

// Start-up against a Redis that is not there, or not Redis: one warning, at once, that names the
// setting, the server and the reason, while the replica stays up and unready.
describe('start-up with a dead or wrong Redis', () => {
  let http: Server;
  let httpPort: number;
  let redis: RedisProcess;
  const gateways: Gateway[] = [];

  before(async () => {
    // Something that is not Redis on the port: a plain HTTP server (it answers "HTTP/1.1 400").
    http = createServer((_req, res) => res.end('not redis'));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    httpPort = (http.address() as { port: number }).port;
    redis = await startRedis();
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    http?.close();
    await redis?.stop();
  });

  async function start(env: Record<string, string>): Promise<Gateway> {
    const g = await startGateway({ env });
    gateways.push(g);
    return g;
  }

  async function startWarning(g: Gateway) {
    return g.waitForLog('the start-up warning', (l) => l.level === 40 && l.msg.startsWith('redis unreachable at start'));
  }

  for (const transport of ['uws', 'node'] as const) {
    it(`a closed port: REDIS_URL, the server and "refused" (TRANSPORT=${transport})`, async () => {
      const port = await freePort();
      const g = await start({ TRANSPORT: transport, REDIS_URL: `redis://127.0.0.1:${port}` });
      assert.equal((await g.waitForLog('listening', (l) => l.msg === 'listening')).redis, 'connecting');
      const line = await startWarning(g);
      assert.deepEqual([line.setting, line.server, line.reason], ['REDIS_URL', `127.0.0.1:${port}`, 'refused']);
      assert.match(line.msg, new RegExp(`REDIS_URL 127\\.0\\.0\\.1:${port}: connection refused`));
      assert.equal((await getJson(`${g.url}/readyz`)).status, 503);
      assert.equal((await getJson(`${g.url}/healthz`)).status, 200);
    });

    it(`an HTTP server on the port: "not_redis" (TRANSPORT=${transport})`, async () => {
      const g = await start({ TRANSPORT: transport, REDIS_URL: `redis://127.0.0.1:${httpPort}` });
      const line = await startWarning(g);
      assert.deepEqual([line.setting, line.server, line.reason], ['REDIS_URL', `127.0.0.1:${httpPort}`, 'not_redis']);
      assert.match(String(line.cause), /Protocol error/);
      assert.equal((await getJson(`${g.url}/readyz`)).status, 503);
    });
  }

  it('a wrong password: "auth_failed", once, without the per-connection errors', async () => {
    const secured = await startRedis({ password: 'the-right-one' });
    try {
      const g = await start({ REDIS_URL: `redis://:wrong@127.0.0.1:${secured.port}` });
      const line = await startWarning(g);
      assert.deepEqual([line.setting, line.reason], ['REDIS_URL', 'auth_failed']);
      assert.match(String(line.cause), /WRONGPASS/);
      // The bus's connections report through that one line (their errors are at debug level).
      assert.equal(g.logs.filter((l) => l.level >= 40 && l.msg === 'redis connection error').length, 0);
    } finally {
      await secured.stop();
    }
  });

  it('REDIS_CLUSTER_NODES that answer nothing: named, with "no_cluster"', async () => {
    const port = await freePort();
    const g = await start({ REDIS_CLUSTER_NODES: `127.0.0.1:${port}`, REDIS_MODE: 'sharded' });
    const line = await startWarning(g);
    assert.deepEqual([line.setting, line.server, line.reason], ['REDIS_CLUSTER_NODES', `127.0.0.1:${port}`, 'no_cluster']);
  });

  it("ioredis's own warnings go through the JSON log (a password sent to a Redis that needs none)", async () => {
    const g = await start({ REDIS_URL: `redis://:needless@127.0.0.1:${redis.port}` });
    const line = await g.waitForLog("ioredis's console.warn", (l) => l.source === 'console' && /does not require a password/.test(l.msg));
    assert.equal(line.level, 40);
    // It still connects: the warning is all there was to say.
    await g.waitForLog('redis ready', (l) => l.msg === 'redis ready');
    assert.equal(g.logs.filter((l) => l.level === 0).length, 0, 'every stdout line is JSON');
  });
});
