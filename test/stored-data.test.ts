import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { connectClient, getJson, publish } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { drop, reconnect, recoveringClient } from './helpers/recovery.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';
import { sessionKey } from '../src/recovery/store.js';

const KEY = 'stored-data-key-0123456789';

/** A counter of `/metrics` by its full series, e.g. `herald_stored_data_invalid_total{what="session"}`. */
async function counter(gw: Gateway, series: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

// What herald reads back from Redis and cannot parse is refused with `stored_data_invalid`:
// counted, logged, and skipped, never a crash, a silent loss or a raw stack.
describe('data stored in Redis that cannot be read back', () => {
  let redis: RedisProcess;
  let gw: Gateway;
  let raw: Redis;

  before(async () => {
    redis = await startRedis();
    raw = new Redis(redis.url);
    // The last test kills Redis under this client too; it reconnects by itself.
    raw.on('error', () => {});
    gw = await startGateway({
      env: { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'h:*', CONNECTION_RECOVERY_SECONDS: '60', STATUS_PAGE: 'true' },
    });
    await waitFor('ready', async () => (await getJson(`${gw.url}/readyz`)).status === 200);
  });
  after(async () => {
    raw?.disconnect();
    await gw?.stop();
    await redis?.stop();
  });

  it('a damaged recovery session: a fresh session, counted and logged', async () => {
    const c = await recoveringClient(gw.url);
    try {
      assert.equal(((await c.socket.timeout(5000).emitWithAck('subscribe', 'h:damaged')) as { ok: boolean }).ok, true);
      const pid = (c.socket as unknown as { _pid: string })._pid;
      const key = `socket.io-session:{${sessionKey(pid)}}`;
      await drop(c.socket);
      await waitFor('the session saved', async () => (await raw.exists(key)) === 1);
      await raw.set(key, '{"not": "a session"', 'PX', 60_000);
      assert.deepEqual(await reconnect(c.socket), { recovered: false });
      assert.equal(await counter(gw, 'herald_stored_data_invalid_total{what="session"}'), 1);
      assert.equal(await counter(gw, 'herald_session_recovery_total{outcome="lookup_failed"}'), 1);
      const line = await gw.waitForLog('the warning', (l) => l.msg.startsWith('could not read a session back'));
      assert.equal(line.code, 'stored_data_invalid', JSON.stringify(gw.logs.slice(-5)));
    } finally {
      c.socket.close();
    }
  });

  it('a history entry that is not herald\'s: skipped by reads, counted, the others returned', async () => {
    const room = 'h:entries';
    const first = await publish(gw.url, { room, event: 'm', data: 1 }, KEY);
    assert.equal(first.status, 200);
    await raw.xadd(`socket.io-history:{${room}}`, '*', 'm', 'not json');
    const last = await publish(gw.url, { room, event: 'm', data: 2 }, KEY);
    const page = await fetch(`${gw.url}/v1/rooms/${room}/history`, { headers: { authorization: `Bearer ${KEY}` } }).then((r) => r.json() as Promise<{ entries: { id: string; data: unknown }[] }>);
    assert.deepEqual(page.entries.map((e) => [e.id, e.data]), [[first.body.ids[room], 1], [last.body.ids[room], 2]]);
    assert.equal(await counter(gw, 'herald_stored_data_invalid_total{what="history_entry"}'), 1);
    assert.equal((await gw.waitForLog('the warning', (l) => l.msg === 'skipped a history entry that cannot be read')).code, 'stored_data_invalid');
  });

  it('a subscribe {last} over a damaged entry still gets the others', async () => {
    const room = 'h:tail';
    await publish(gw.url, { room, event: 'm', data: 'a' }, KEY);
    await raw.xadd(`socket.io-history:{${room}}`, '*', 'm', '{"room": 1}');
    const before = await counter(gw, 'herald_stored_data_invalid_total{what="history_entry"}');
    const c = await connectClient(gw.url);
    try {
      assert.equal(((await c.subscribe({ room, last: 5 })) as { ok: boolean }).ok, true);
      await c.waitFor('the good entry', (r) => r.data === 'a');
      // Read by the tail and again by the replay after it.
      assert.ok((await counter(gw, 'herald_stored_data_invalid_total{what="history_entry"}')) > before);
    } finally {
      c.close();
    }
  });

  it("another replica's stats that are not JSON: left out of /v1/stats, counted", async () => {
    await raw.hset('socket.io-stats', 'intruder', 'not json');
    const stats = await getJson(`${gw.url}/v1/stats`);
    assert.equal(stats.status, 200);
    assert.deepEqual((stats.body.cluster as { replica: string }[]).map((s) => s.replica), [gw.replicaId]);
    assert.ok((await counter(gw, 'herald_stored_data_invalid_total{what="stats"}')) >= 1);
  });

  it('Redis down during a restore: counted as lookup_failed, a fresh session', async () => {
    const c = await recoveringClient(gw.url);
    try {
      assert.equal(((await c.socket.timeout(5000).emitWithAck('subscribe', 'h:down')) as { ok: boolean }).ok, true);
      const key = `socket.io-session:{${sessionKey((c.socket as unknown as { _pid: string })._pid)}}`;
      await drop(c.socket);
      await waitFor('the session saved', async () => (await raw.exists(key)) === 1);
      const failed = await counter(gw, 'herald_session_recovery_total{outcome="lookup_failed"}');
      await redis.kill();
      try {
        assert.deepEqual(await reconnect(c.socket), { recovered: false });
        assert.equal(await counter(gw, 'herald_session_recovery_total{outcome="lookup_failed"}'), failed + 1);
      } finally {
        await redis.restart();
      }
    } finally {
      c.socket.close();
    }
  });
});
