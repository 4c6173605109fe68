import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { io as connect, type Socket } from 'socket.io-client';
import { connectClient, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { attempt, upgradeHead } from './helpers/raw.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { openSse } from './helpers/sse.js';
import { onceWithin } from './helpers/wait.js';

/**
 * HANDSHAKE_MAX_LAG_MS: a replica whose event loop is behind refuses new handshakes at once (503
 * `overloaded`) instead of answering them after their clients gave up, and nothing else changes.
 *
 * The replica is made to fall behind from outside, as a starved or stalled process is: SIGSTOP
 * for STALL_MS while handshakes, a stream and a publish arrive, then SIGCONT. It then meets them
 * STALL_MS late, its smoothed lag past the setting.
 */
const MAX_LAG_MS = 300;
/** Long enough that the smoothed lag (a quarter of the stall, LOOP_LAG_WEIGHT) is well past MAX_LAG_MS. */
const STALL_MS = 2_500;
const ENV = { CONNECT_RATE_PER_IP: '100000', CONNECT_BURST_PER_IP: '100000' };

async function metricsText(gw: Gateway): Promise<string> {
  return (await fetch(`${gw.url}/metrics`)).text();
}

const refusedOverloaded = (text: string): number => Number(/herald_connections_refused_total\{reason="overloaded"\} (\d+)/.exec(text)?.[1] ?? 0);

describe('HANDSHAKE_MAX_LAG_MS: handshakes refused while the event loop is behind', () => {
  let redis: RedisProcess;
  const gateways: Gateway[] = [];
  const clients: (TestClient | Socket)[] = [];
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(gateways.map((g) => g.stop()));
    await redis?.stop();
  });

  for (const transport of ['uws', 'node'] as const) {
    it(`refuses a WebSocket upgrade, a reconnecting socket.io-client and an event stream with 503 overloaded; the open connection gets what was published meanwhile, and the client gets in by its own backoff (TRANSPORT=${transport})`, async () => {
      const gw = await startGateway({ env: { ...ENV, TRANSPORT: transport, REDIS_URL: redis.url, HANDSHAKE_MAX_LAG_MS: String(MAX_LAG_MS) } });
      gateways.push(gw);
      const room = `match:${transport}`;
      const open = await connectClient(gw.url);
      clients.push(open);
      assert.deepEqual(await open.subscribe(room), { ok: true, room });

      gw.signal('SIGSTOP');
      let refusedUpgrade: ReturnType<typeof attempt>;
      let stream: ReturnType<typeof openSse>;
      let published: ReturnType<typeof publish>;
      const late = connect(gw.url, { transports: ['websocket'], forceNew: true, reconnectionDelay: 200, reconnectionDelayMax: 400 });
      clients.push(late);
      const firstError = onceWithin<[Error & { description?: unknown }]>(late, 'connect_error', 'the late client refused', STALL_MS + 10_000);
      try {
        refusedUpgrade = attempt(gw.port, upgradeHead());
        stream = openSse(`${gw.url}/v1/stream?room=${room}`);
        published = publish(gw.url, { room, event: 'score', data: { during: 'stall' } });
        // The stimulus: how long the replica is stopped, so that it meets all of the above late.
        await delay(STALL_MS);
      } finally {
        gw.signal('SIGCONT');
      }

      const answer = await refusedUpgrade;
      assert.equal(answer.status, 503, answer.head);
      assert.equal(JSON.parse(answer.body).error.code, 'overloaded');
      assert.match(answer.head, /\r\nretry-after: 1\r\n/i);
      assert.equal(await answer.closedByServer, true, 'the refused connection is closed by the replica');

      const sse = await stream;
      const bye = await sse.waitFor('herald:disconnect', (e) => e.event === 'herald:disconnect');
      assert.equal(bye.data.data.code, 'overloaded');

      assert.equal((await published).status, 200);
      const got = await open.waitFor('the message published during the stall', (r) => r.event === 'score');
      assert.deepEqual(got.data, { during: 'stall' });
      assert.equal(open.socket.connected, true);

      await firstError;
      // socket.io-client's own reconnection, as an app's client would: in once the loop has caught up.
      await onceWithin(late, 'connect', 'the late client in by its backoff');
      assert.ok(refusedOverloaded(await metricsText(gw)) >= 2, 'the upgrade and the late client, at least');
      await gw.waitForLog('the shedding warning', (l) => l.msg === 'event loop behind: refusing new handshakes (503 overloaded)');
    });
  }

  it('takes the same handshake, as late, with HANDSHAKE_MAX_LAG_MS=0', async () => {
    const gw = await startGateway({ env: { ...ENV, REDIS_URL: redis.url, HANDSHAKE_MAX_LAG_MS: '0' } });
    gateways.push(gw);
    gw.signal('SIGSTOP');
    let answer: ReturnType<typeof attempt>;
    try {
      answer = attempt(gw.port, upgradeHead());
      await delay(STALL_MS);
    } finally {
      gw.signal('SIGCONT');
    }
    const accepted = await answer;
    accepted.socket.destroy();
    assert.equal(accepted.status, 101);
    assert.equal(refusedOverloaded(await metricsText(gw)), 0);
  });
});
