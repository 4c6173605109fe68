import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startHaproxy, type Haproxy } from './helpers/haproxy.js';
import { metricValue } from './helpers/metrics.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { needs } from './helpers/tools.js';

const KEY = 'test-publish-key-0123456789';
const CLIENTS = 12;

/** `herald_connections_refused_total{reason="capacity"}` of one replica. */
const refusedForCapacity = (g: Gateway) => metricValue(g.url, 'herald_connections_refused_total{reason="capacity"}', KEY);

/**
 * deploy/compose/haproxy.cfg (`retry-on conn-failure 503`, only for GETs) in front of a replica at
 * its MAX_CONNECTIONS and one with room: leastconn keeps choosing the full one (it holds fewer
 * connections), which refuses each handshake with 503 `over_capacity`; HAProxy tries it on the
 * other at once, and no client sees the refusal. Without the retry each of those clients would get
 * `connect_error` and wait out its backoff.
 */
describe('behind HAProxy: a handshake refused with 503 is tried on another replica', { skip: needs('haproxy') }, () => {
  let redis: RedisProcess;
  let full: Gateway;
  let open: Gateway;
  let lb: Haproxy;
  const clients: TestClient[] = [];

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUBLISH_KEYS: KEY };
    [full, open] = await Promise.all([startGateway({ env: { ...env, MAX_CONNECTIONS: '1' } }), startGateway({ env })]);
    lb = await startHaproxy([
      { name: 'full', port: full.port },
      { name: 'open', port: open.port },
    ]);
  });

  after(async () => {
    for (const c of clients) c.close();
    await lb?.stop();
    await Promise.all([full?.stop(), open?.stop()]);
    await redis?.stop();
  });

  it(`${CLIENTS} clients, WebSocket and long-polling, one after another: every one connects at the first try, the full replica's refusals retried on the other`, async () => {
    const before = await refusedForCapacity(full);
    // The full replica's one connection, made directly.
    clients.push(await connectClient(full.url));
    for (let i = 0; i < CLIENTS; i++) {
      // connectClient throws at the first `connect_error` (reconnection is off).
      clients.push(await connectClient(lb.url, { transport: i % 2 === 0 ? 'websocket' : 'polling', cookies: true }));
    }
    const refused = (await refusedForCapacity(full)) - before;
    assert.ok(refused > 0, `the full replica refused handshakes (${refused}): the retry path ran`);
    const through = clients.slice(1);
    assert.deepEqual(
      through.map((c) => c.replica),
      through.map(() => open.replicaId),
      'every client through the balancer is on the replica with room',
    );
    // And they are served: a publish through the balancer (a POST, never retried) reaches them all once.
    for (const c of through) assert.deepEqual(await c.subscribe('lb:retry'), { ok: true, room: 'lb:retry' });
    const res = await publish(lb.url, { room: 'lb:retry', event: 'm', data: 'after' }, KEY);
    assert.equal(res.status, 200);
    for (const c of through) await c.waitFor('the publish', (r) => r.event === 'm' && r.data === 'after');
    for (const c of through) assert.equal(c.received.filter((r) => r.event === 'm').length, 1);
  });
});
