import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startBackend, startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';

const KEY = 'test-publish-key-0123456789';
const HISTORY_ROOMS = 'live:* size=2000, small:* size=5';

/** One contract, two backends: in memory on a single node, and in Redis across two replicas. */
for (const backend of ['memory', 'redis'] as const) {
  describe(`history and recovery (${backend})`, () => {
    let redis: RedisProcess | undefined;
    let publisherGw: Gateway;
    let clientGw: Gateway;
    const gateways: Gateway[] = [];
    const clients: TestClient[] = [];

    const client = async () => {
      const c = await connectClient(clientGw.url);
      clients.push(c);
      return c;
    };
    const send = async (room: string, data: unknown, event = 'msg') => {
      const res = await publish(publisherGw.url, { room, event, data }, KEY);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.ids[room] as string;
    };
    const history = (room: string, query = '') =>
      fetch(`${publisherGw.url}/v1/rooms/${encodeURIComponent(room)}/history${query}`, { headers: { authorization: `Bearer ${KEY}` } }).then(
        async (r) => ({ status: r.status, body: (await r.json()) as any }),
      );
    const dataOf = (c: TestClient, room: string) => c.received.filter((r) => r.meta?.room === room && r.event === 'msg').map((r) => r.data);

    before(async () => {
      const started = await startBackend(backend, { PUBLISH_KEYS: KEY, HISTORY_ROOMS });
      redis = started.redis;
      gateways.push(...started.gateways);
      publisherGw = gateways[0]!;
      clientGw = gateways.at(-1)!;
    });

    after(async () => {
      for (const c of clients) c.close();
      await Promise.all(gateways.map((g) => g.stop()));
      await redis?.stop();
    });

    it('replays what a client missed, in order, then continues live, with stream offsets as ids', async () => {
      const first = await client();
      await first.subscribe('live:1');
      const ids: string[] = [];
      for (let i = 1; i <= 5; i++) ids.push(await send('live:1', i));
      await first.waitFor('5', (r) => r.data === 5);
      assert.deepEqual(first.received.map((r) => r.meta.id), ids, 'meta.id is the id the publish returned');
      assert.ok(ids.every((id) => /^\d+-\d+$/.test(id)));
      first.close();

      let id15 = '';
      for (let i = 6; i <= 15; i++) id15 = await send('live:1', i);
      const back = await client();
      assert.deepEqual(await back.subscribe({ room: 'live:1', since: ids[4] }), { ok: true, room: 'live:1', recovered: true, offset: id15 });
      await send('live:1', 16);
      await back.waitFor('16', (r) => r.data === 16);
      assert.deepEqual(dataOf(back, 'live:1'), [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
    });

    it('gives a fresh subscriber a position, so it recovers even if it received nothing before dropping', async () => {
      const c = await client();
      const ack = (await c.subscribe('live:quiet')) as { ok: boolean; offset: string };
      assert.equal(ack.ok, true);
      assert.match(ack.offset, /^\d+-\d+$/, 'an empty room has a position too');
      c.close();
      for (let i = 1; i <= 3; i++) await send('live:quiet', i);
      const back = await client();
      const again = (await back.subscribe({ room: 'live:quiet', since: ack.offset })) as { recovered: boolean };
      assert.equal(again.recovered, true);
      await back.waitFor('3', (r) => r.data === 3);
      assert.deepEqual(dataOf(back, 'live:quiet'), [1, 2, 3]);
      // The position marker is not a message: history holds exactly the three.
      assert.deepEqual((await history('live:quiet')).body.entries.map((e: any) => e.data), [1, 2, 3]);
    });

    it('says recovered: false when since is older than the history window, or unknown', async () => {
      const firstId = await send('small:1', 0);
      // Enough to trim even Redis's approximate MAXLEN (it trims whole nodes of 100 entries).
      for (let i = 1; i <= 300; i++) await send('small:1', i);
      const c = await client();
      const kept = await history('small:1', '?limit=1000');
      const top = kept.body.entries.at(-1).id;
      // Not recoverable: the answer says so, and gives the current position to continue from.
      assert.deepEqual(await c.subscribe({ room: 'small:1', since: firstId }), { ok: true, room: 'small:1', recovered: false, offset: top });
      assert.deepEqual(await c.subscribe({ room: 'small:1', since: '1-0' }), { ok: true, room: 'small:1', recovered: false, offset: top });
      assert.ok(kept.body.entries.length < 301 && kept.body.entries.length >= 5, `kept ${kept.body.entries.length}`);
      assert.equal(kept.body.entries.at(-1).data, 300);
      // Still subscribed: live messages flow after a failed recovery.
      await send('small:1', 'live');
      await c.waitFor('live after recovered:false', (r) => r.data === 'live');
      assert.deepEqual(dataOf(c, 'small:1'), ['live'], 'nothing replayed when recovery is impossible');
    });

    it('reads a since catch-up with one Redis command (the XRANGE from since itself)', { skip: backend !== 'redis' }, async () => {
      const calls = async () => {
        const r = new Redis(redis!.url);
        try {
          const info = await r.info('commandstats');
          const n = (cmd: string) => Number(new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
          return { xrange: n('xrange'), multi: n('multi'), exec: n('exec') };
        } finally {
          r.disconnect();
        }
      };
      const id1 = await send('live:one-read', 1);
      const id2 = await send('live:one-read', 2);
      const c = await client();
      const before = await calls();
      assert.deepEqual(await c.subscribe({ room: 'live:one-read', since: id1 }), { ok: true, room: 'live:one-read', recovered: true, offset: id2 });
      await c.waitFor('2', (r) => r.data === 2);
      assert.deepEqual(dataOf(c, 'live:one-read'), [2]);
      const after = await calls();
      assert.deepEqual({ xrange: after.xrange - before.xrange, multi: after.multi - before.multi, exec: after.exec - before.exec }, { xrange: 1, multi: 0, exec: 0 });
    });

    it('reads since at the edges: the newest id, a limit that ends exactly, an id of another room, one past the end', async () => {
      const ids: string[] = [await send('live:edges', 0)];
      // An id of another room, between two of this room's.
      const other = await send('live:edges-other', 'x');
      for (let i = 1; i < 3; i++) ids.push(await send('live:edges', i));
      const at = async (since: string, limit = 10) => (await history('live:edges', `?since=${since}&limit=${limit}`)).body;
      assert.deepEqual((await at(ids[0]!, 2)).entries.map((e: any) => e.id), [ids[1], ids[2]], 'limit counts entries after since, not since itself');
      assert.equal((await at(ids[0]!, 2)).recovered, true);
      assert.deepEqual([(await at(ids[2]!)).recovered, (await at(ids[2]!)).entries], [true, []], 'since = the newest entry: recovered, nothing to send');
      const [ms, seq] = ids[2]!.split('-').map(Number);
      assert.deepEqual([(await at(`${ms}-${seq! + 1}`)).recovered, (await at(`${ms}-${seq! + 1}`)).entries], [false, []], 'an id past the end was never in this room');
      assert.deepEqual([(await at(other)).recovered, (await at(other)).entries], [false, []], "another room's id is not this room's");
    });

    it('answers bad since values and rooms without history clearly', async () => {
      const c = await client();
      const bad = (await c.subscribe({ room: 'live:2', since: 'yesterday' })) as any;
      assert.deepEqual([bad.ok, bad.error.code], [false, 'invalid_since']);
      assert.deepEqual(await c.subscribe({ room: 'plain', since: '1-0' }), { ok: true, room: 'plain', recovered: false });
    });

    it('pages through GET /v1/rooms/:room/history', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 25; i++) ids.push(await send('live:page', i));
      const seen: string[] = [];
      let since = '';
      for (let page = 0; page < 5; page++) {
        const res = await history('live:page', `?limit=10${since ? `&since=${since}` : ''}`);
        assert.equal(res.status, 200);
        assert.equal(res.body.recovered, true);
        seen.push(...res.body.entries.map((e: any) => e.id));
        if (!res.body.next) break;
        since = res.body.next;
      }
      assert.deepEqual(seen, ids);
      const one = (await history('live:page', `?since=${ids[23]}`)).body;
      assert.deepEqual(one.entries, [{ id: ids[24], event: 'msg', data: 24, ts: one.entries[0].ts }]);
      assert.equal(one.next, undefined);

      assert.equal((await history('live:page', '?since=nope')).body.error.code, 'invalid_since');
      assert.equal((await history('live:page', '?limit=0')).body.error.code, 'bad_request');
      assert.equal((await history('plain-room')).status, 404);
      const anonymous = await fetch(`${publisherGw.url}/v1/rooms/live:page/history`);
      assert.equal(anonymous.status, 401);
    });

    it('has no gap and no duplicate between replay and live while messages keep coming', async () => {
      const room = 'live:race';
      const watcher = await client();
      await watcher.subscribe(room);
      const N = 300;
      // Clients join with `since` at several points while the publisher runs on the other replica.
      const joinAt = [20, 60, 100, 150, 200, 250];
      const joiners: { c: TestClient; from: number; ack: Promise<unknown> }[] = [];
      const publishing = (async () => {
        for (let i = 1; i <= N; i++) await send(room, i);
      })();
      for (const from of joinAt) {
        const seen = await watcher.waitFor(`message ${from}`, (r) => r.data === from);
        const c = await client();
        joiners.push({ c, from, ack: c.subscribe({ room, since: seen.meta.id }) });
      }
      await publishing;
      for (const j of joiners) {
        assert.deepEqual({ ...(await j.ack as object), offset: undefined }, { ok: true, room, recovered: true, offset: undefined });
        await j.c.waitFor(`message ${N}`, (r) => r.data === N);
        const expected = Array.from({ length: N - j.from }, (_, k) => j.from + 1 + k);
        assert.deepEqual(dataOf(j.c, room), expected, `joined after ${j.from}`);
      }
    });

    it('keeps rooms without history on the plain path, with UUID ids', async () => {
      const c = await client();
      await c.subscribe('plain:1');
      const res = await publish(publisherGw.url, { rooms: ['plain:1', 'live:mixed'], event: 'msg', data: 'x' }, KEY);
      assert.equal(res.status, 200);
      assert.equal(res.body.ids['plain:1'], res.body.id);
      assert.match(res.body.ids['live:mixed'], /^\d+-\d+$/);
      const got = await c.waitFor('plain message', (r) => r.data === 'x');
      assert.equal(got.meta.id, res.body.id);
    });
  });
}

describe('history rooms while Redis is down', () => {
  let redis: RedisProcess;
  let gw: Gateway;
  const clients: TestClient[] = [];
  before(async () => {
    redis = await startRedis();
    gw = await startGateway({ env: { PUBLISH_KEYS: KEY, HISTORY_ROOMS, REDIS_URL: redis.url } });
  });
  after(async () => {
    for (const c of clients) c.close();
    await gw?.stop();
    await redis?.stop();
  });

  it('refuses to publish to a history room (nothing delivered), while plain rooms still deliver locally', async () => {
    const c = await connectClient(gw.url);
    clients.push(c);
    await c.subscribe('live:down');
    await c.subscribe('plain:down');
    await redis.kill();
    const refused = await publish(gw.url, { room: 'live:down', event: 'msg', data: 'lost?' }, KEY);
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, 'unavailable');
    assert.equal((await publish(gw.url, { room: 'plain:down', event: 'msg', data: 'local' }, KEY)).status, 200);
    await c.waitFor('plain message', (r) => r.data === 'local');
    assert.ok(!c.received.some((r) => r.data === 'lost?'), 'a refused history publish is not delivered');
    const h = await fetch(`${gw.url}/v1/rooms/live:down/history`, { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(h.status, 503);
    const sub = await c.subscribe({ room: 'live:down', since: '1-0' });
    assert.deepEqual(sub, { ok: true, room: 'live:down', recovered: false }, 'no offset while history is unreachable');
    const warning = await gw.waitForLog('history unreachable on subscribe', (l) => l.msg === 'history unreachable on subscribe; joined for live messages only');
    assert.equal(warning.room, 'live:down');
    // Asked for the room's newest messages: they are the client's state, so no silent live-only join.
    const last = (await c.subscribe({ room: 'live:down', last: 1 })) as { ok: boolean; error?: { code: string } };
    assert.equal(last.ok, false, JSON.stringify(last));
    assert.equal(last.error?.code, 'unavailable');
    await publish(gw.url, { room: 'plain:down', event: 'msg', data: 'local again' }, KEY);
    await c.waitFor('plain message again', (r) => r.data === 'local again');
    assert.equal((await getJson(`${gw.url}/healthz`)).status, 200);
  });
});

/**
 * Redis reachable but refusing writes (out of memory under `noeviction`, or a replica that became
 * read-only): not "down", and another replica writes to the same Redis. The publish says so, and
 * the replica logs why.
 */
describe('history rooms while Redis refuses writes', () => {
  let redis: RedisProcess;
  let gw: Gateway;
  let r: Redis;
  before(async () => {
    redis = await startRedis();
    r = new Redis(redis.url);
    gw = await startGateway({ env: { PUBLISH_KEYS: KEY, HISTORY_ROOMS, REDIS_URL: redis.url } });
  });
  after(async () => {
    r?.disconnect();
    await gw?.stop();
    await redis?.stop();
  });

  it('answers 503 unavailable naming the refusal (OOM), logs it, and publishes again once Redis takes writes', async () => {
    assert.equal((await publish(gw.url, { room: 'live:oom', event: 'msg', data: 'before' }, KEY)).status, 200);
    await r.config('SET', 'maxmemory-policy', 'noeviction');
    await r.config('SET', 'maxmemory', '1');
    try {
      const refused = await publish(gw.url, { room: 'live:oom', event: 'msg', data: 'refused' }, KEY);
      assert.equal(refused.status, 503);
      assert.equal(refused.body.error.code, 'unavailable');
      assert.match(refused.body.error.message, /Redis refused the write \(OOM/);
      assert.doesNotMatch(refused.body.error.message, /Redis is down/);
      const line = await gw.waitForLog('the refusal logged', (l) => l.msg === 'redis refused a history write; the publish was refused (unavailable)');
      assert.match(String(line.err), /^OOM/);
    } finally {
      await r.config('SET', 'maxmemory', '0');
    }
    assert.equal((await publish(gw.url, { room: 'live:oom', event: 'msg', data: 'after' }, KEY)).status, 200);
  });
});
