import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { io } from 'socket.io-client';
import { HeraldClient } from '../client/src/index.js';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { metricValue } from './helpers/metrics.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { startRelay, type Relay } from './helpers/relay.js';
import { openSse } from './helpers/sse.js';
import { onceWithin, waitFor } from './helpers/wait.js';
import { score, type Recorded } from './helpers/scores.js';

// Delta rooms (HISTORY_ROOMS ` delta`, src/history/delta.ts) with real replicas, Redis and
// clients: the client module (client/) and raw socket.io-client sockets that see the wire.

const KEY = 'test-publish-key-0123456789';

/** A HeraldClient that records what its handler receives. */
function recorder(herald: HeraldClient, event: string): Recorded[] {
  const got: Recorded[] = [];
  herald.on(event, (data, meta) => got.push({ data, id: meta.id }));
  return got;
}

function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am - bm || as - bs;
}

const metric = (gw: Gateway, name: string, labels = '') => metricValue(gw.url, `${name}${labels}`, KEY);

/** Publishes `count` scores into `room` through `gw`, one after the other; resolves with [id, data] pairs. */
async function publishScores(gw: Gateway, room: string, from: number, count: number, each?: (i: number) => void | Promise<void>): Promise<Recorded[]> {
  const out: Recorded[] = [];
  for (let i = from; i < from + count; i++) {
    const data = score(i);
    const res = await publish(gw.url, { room, event: 'score', data }, KEY);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    out.push({ id: res.body.ids[room] as string, data });
    await each?.(i - from);
  }
  return out;
}

const SETUPS = [
  { transport: 'uws', mode: 'classic' },
  { transport: 'node', mode: 'classic' },
  { transport: 'uws', mode: 'sharded' },
] as const;

for (const { transport, mode } of SETUPS) {
  describe(`delta rooms, ${transport} transport, two replicas + Redis (${mode})`, () => {
    let redis: RedisProcess;
    const gateways: Gateway[] = [];
    const closers: (() => void)[] = [];

    before(async () => {
      redis = await startRedis();
      const env = { TRANSPORT: transport, REDIS_MODE: mode, REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'scores:* size=5000 delta, plain:*', MAX_SUBSCRIPTIONS: '3' };
      for (let i = 0; i < 2; i++) gateways.push(await startGateway({ env }));
      for (const g of gateways) await waitFor(`${g.replicaId} ready`, async () => (await getJson(`${g.url}/readyz`)).status === 200);
    });

    after(async () => {
      for (const close of closers) close();
      await Promise.all(gateways.map((g) => g.stop()));
      await redis?.stop();
    });

    it('every subscriber reconstructs exactly the published payloads, in order, under publishes through both replicas', async () => {
      const [a, b] = gateways as [Gateway, Gateway];
      const room = 'scores:concurrent';
      const heralds: { herald: HeraldClient; got: Recorded[]; delta: boolean }[] = [];
      const raws: TestClient[] = [];
      for (const gw of [a, b]) {
        // Two delta subscribers over WebSocket, one over long-polling, one for whole messages.
        for (const [delta, transport] of [[true, 'websocket'], [true, 'websocket'], [true, 'polling'], [false, 'websocket']] as const) {
          const socket = io(gw.url, { transports: [transport], forceNew: true, reconnection: false });
          closers.push(() => socket.close());
          const herald = new HeraldClient(socket);
          const got = recorder(herald, 'score');
          await herald.subscribe(room, delta ? { delta: 'fossil' } : {});
          heralds.push({ herald, got, delta });
        }
        const raw = await connectClient(gw.url);
        closers.push(() => raw.close());
        assert.equal((await raw.subscribe({ room, delta: 'fossil' }) as { ok: boolean }).ok, true);
        raws.push(raw);
      }
      const [fromA, fromB] = await Promise.all([publishScores(a, room, 0, 60), publishScores(b, room, 1000, 60)]);
      const published = [...fromA, ...fromB].sort((x, y) => compareIds(x.id, y.id));

      for (const [i, h] of heralds.entries()) {
        await waitFor(`client ${i} has all ${published.length}`, () => h.got.length >= published.length);
        assert.deepEqual(h.got, published, `client ${i} (delta: ${h.delta})`);
        assert.equal(h.herald.stats.mismatches, 0);
        if (h.delta) assert.ok(h.herald.stats.deltas > published.length / 2, `client ${i} applied ${h.herald.stats.deltas} deltas`);
        else assert.equal(h.herald.stats.deltas, 0);
      }
      // On the wire: the first message is whole; each delta names the message before it.
      for (const raw of raws) {
        await waitFor('raw client has all', () => raw.received.length >= published.length);
        assert.equal((raw.received[0]!.meta as { base?: string }).base, undefined);
        for (let i = 1; i < raw.received.length; i++) {
          const base = (raw.received[i]!.meta as { base?: string }).base;
          if (base !== undefined) assert.equal(base, raw.received[i - 1]!.meta.id);
        }
        assert.ok(raw.received.some((r) => typeof r.data === 'string'), 'deltas arrived as strings');
      }
      for (const g of gateways) {
        assert.ok((await metric(g, 'herald_delta_messages_total', '{kind="delta"}')) > 0);
        assert.ok((await metric(g, 'herald_delta_bytes_saved_total')) > 0);
      }
    });

    it('a client through a relay that resets its connections, and moves it to the other replica, ends with every payload once, in order', async () => {
      const [a, b] = gateways as [Gateway, Gateway];
      const room = 'scores:resets';
      const relay: Relay = await startRelay(a.port);
      closers.push(() => void relay.close());
      const socket = io(relay.url, { transports: ['websocket'], forceNew: true, reconnectionDelay: 20, reconnectionDelayMax: 100 });
      closers.push(() => socket.close());
      // Before the first connect: its herald:hello can come before the subscribe's answer.
      const replicas: string[] = [];
      socket.on('herald:hello', (h: { replica: string }) => replicas.push(h.replica));
      await onceWithin(socket, 'connect', 'connect through the relay');
      const errors: unknown[] = [];
      const trace: string[] = [];
      socket.onAny((e: string, _d: unknown, m: { id?: string; base?: string } | undefined) => trace.push(`in ${e} ${m?.id} base=${m?.base}`));
      socket.onAnyOutgoing((e: string, arg: unknown) => trace.push(`out ${e} ${JSON.stringify(arg)}`));
      socket.on('connect', () => trace.push(`connect recovered=${socket.recovered}`));
      const herald = new HeraldClient(socket, { onError: (_room, err) => errors.push(err) });
      const got = recorder(herald, 'score');
      await herald.subscribe(room, { delta: 'fossil' });
      const resetsAt = new Set([20, 50, 80]);
      let resets = 0;
      const published = await publishScores(b, room, 0, 110, async (i) => {
        // At the second reset the balancer moves on: the client comes back on the other replica.
        if (i === 50) relay.retarget(b.port);
        if (resetsAt.has(i)) {
          // A reset needs a connection to reset: the client back from the one before (its
          // reconnect delay can outlast 30 publishes on a busy machine).
          await waitFor(`the client connected again before reset ${resets + 1}`, () => socket.connected);
          resets += relay.resetAll() > 0 ? 1 : 0;
        }
      });
      await waitFor('every payload after the resets', () => got.length >= published.length && got.at(-1)!.id === published.at(-1)!.id).catch((err: Error) => {
        throw new Error(`${err.message}: ${got.length} of ${published.length}, connected ${socket.connected}, stats ${JSON.stringify(herald.stats)}, errors ${errors.map(String).join('; ')}, at ${herald.position(room)}, last published ${published.at(-1)!.id}\n${trace.join('\n')}\ngot ${got.map((g) => g.id).join(' ')}`);
      });
      assert.equal(resets, 3);
      assert.deepEqual([replicas[0], replicas.at(-1)], [a.replicaId, b.replicaId], `replicas: ${replicas.join(', ')}`);
      assert.deepEqual(got, published);
      assert.ok(herald.stats.deltas > 0);
      assert.equal(herald.stats.mismatches, 0);
    });

    it('`last` and `since` start with whole messages, then deltas follow', async () => {
      const [a, b] = gateways as [Gateway, Gateway];
      const room = 'scores:start';
      const first = await publishScores(a, room, 0, 5);
      const tail = await connectClient(b.url);
      const resume = await connectClient(a.url);
      closers.push(() => tail.close(), () => resume.close());
      assert.equal((await tail.subscribe({ room, last: 2, delta: 'fossil' }) as { ok: boolean }).ok, true);
      assert.equal((await resume.subscribe({ room, since: first[1]!.id, delta: 'fossil' }) as { ok: boolean }).ok, true);
      const more = await publishScores(b, room, 5, 5);
      await waitFor('tail has 7', () => tail.received.length >= 7);
      await waitFor('resume has 8', () => resume.received.length >= 8);
      const bases = (c: TestClient) => c.received.map((r) => (r.meta as { base?: string }).base);
      // The catch-up and the first live message are whole; after that, deltas on the message before.
      assert.deepEqual(tail.received.map((r) => r.meta.id), [...first.slice(3), ...more].map((p) => p.id));
      assert.deepEqual(bases(tail).slice(0, 3), [undefined, undefined, undefined]);
      assert.deepEqual(bases(tail).slice(3), more.slice(0, 4).map((p) => p.id));
      assert.deepEqual(resume.received.map((r) => r.meta.id), [...first.slice(2), ...more].map((p) => p.id));
      assert.deepEqual(bases(resume).slice(0, 4), [undefined, undefined, undefined, undefined]);
      assert.deepEqual(bases(resume).slice(4), more.slice(0, 4).map((p) => p.id));
    });

    it('counts each delivery once: a delta subscriber left out of the whole message is not counted for it', async () => {
      const [a, b] = gateways as [Gateway, Gateway];
      const room = 'scores:counted';
      const delivered = async () => {
        let n = 0;
        for (const g of [a, b]) n += ((await getJson(`${g.url}/readyz`)).body as { delivered: number }).delivered;
        return n;
      };
      const clients: TestClient[] = [];
      for (const delta of [true, true, false]) {
        const c = await connectClient(a.url);
        closers.push(() => c.close());
        assert.equal(((await c.subscribe(delta ? { room, delta: 'fossil' } : { room })) as { ok: boolean }).ok, true);
        clients.push(c);
      }
      const before = await delivered();
      await publishScores(b, room, 0, 5);
      await waitFor('every client has all 5', () => clients.every((c) => c.received.filter((r) => r.meta.room === room).length === 5));
      const [d1, d2] = clients as [TestClient, TestClient];
      assert.ok([d1, d2].every((c) => c.received.some((r) => (r.meta as { base?: string }).base)), 'the delta subscribers got deltas');
      // 3 clients × 5 publishes, each written once: whole to one, whole then deltas to two.
      await waitFor('delivered counted', async () => (await delivered()) - before >= 15);
      assert.equal((await delivered()) - before, 15);
    });

    it('an event stream in a room whose sockets all take deltas still gets every whole message', async () => {
      const [a, b] = gateways as [Gateway, Gateway];
      const room = 'scores:beside-sse';
      const subs: TestClient[] = [];
      for (let i = 0; i < 2; i++) {
        const c = await connectClient(a.url);
        closers.push(() => c.close());
        assert.equal(((await c.subscribe({ room, delta: 'fossil' })) as { ok: boolean }).ok, true);
        subs.push(c);
      }
      const sse = await openSse(`${a.url}/v1/stream?room=${encodeURIComponent(room)}`);
      closers.push(() => sse.close());
      assert.equal(sse.status, 200);
      // In the room once it says so (the response's headers come first).
      await sse.waitFor('herald:subscribed', (e) => e.event === 'herald:subscribed' && (e.data.data as { room?: string }).room === room);
      const published = await publishScores(b, room, 0, 6);
      await waitFor('the stream has all 6', () => sse.events.filter((e) => e.data.meta?.room === room).length === 6);
      assert.deepEqual(
        sse.events.filter((e) => e.data.meta?.room === room).map((e) => ({ id: e.data.meta!.id, data: e.data.data })),
        published,
      );
      for (const c of subs) {
        await waitFor('the delta subscriber has all 6', () => c.received.filter((r) => r.meta.room === room).length === 6);
        assert.ok(c.received.some((r) => (r.meta as { base?: string }).base), 'it got deltas');
      }
    });

    it('holds one previous payload per room with delta subscribers, drops it when they leave, and counts subscriptions, not delivery rooms', async () => {
      const [a, b] = gateways as [Gateway, Gateway];
      const held = () => metric(a, 'herald_delta_held_payloads');
      const before = await held();
      const c = await connectClient(a.url);
      closers.push(() => c.close());
      const rooms = ['scores:held-1', 'scores:held-2', 'scores:held-3'];
      for (const room of rooms) assert.equal(((await c.subscribe({ room, delta: 'fossil' })) as { ok: boolean }).ok, true);
      for (const room of rooms) await publishScores(b, room, 0, 2);
      // The second message of each room is a delta: the socket is in each room's delivery room.
      await waitFor('a delta in each room', () => rooms.every((room) => c.received.some((r) => r.meta.room === room && (r.meta as { base?: string }).base)));
      assert.equal(await held(), before + 3);
      // MAX_SUBSCRIPTIONS is 3: a fourth room is refused, and delivery rooms do not count.
      assert.equal(((await c.subscribe({ room: 'scores:held-4', delta: 'fossil' })) as { error: { code: string } }).error.code, 'too_many_subscriptions');
      await c.unsubscribe('scores:held-3');
      await waitFor('the payload of the room left', async () => (await held()) === before + 2);
      assert.equal(((await c.subscribe({ room: 'scores:held-4', delta: 'fossil' })) as { ok: boolean }).ok, true);
      c.close();
      await waitFor('nothing held for the closed client', async () => (await held()) === before);
    });

    it('refuses a delta format it does not know, and deltas in rooms without the option', async () => {
      const c = await connectClient(gateways[0]!.url);
      closers.push(() => c.close());
      assert.deepEqual(((await c.subscribe({ room: 'scores:x', delta: 'vcdiff' })) as { error: { code: string } }).error.code, 'bad_request');
      assert.deepEqual(((await c.subscribe({ room: 'plain:x', delta: 'fossil' })) as { error: { code: string } }).error.code, 'not_found');
      assert.deepEqual(((await c.subscribe({ room: 'other:x', delta: 'fossil' })) as { error: { code: string } }).error.code, 'not_found');
    });
  });
}

/**
 * A delta subscriber that stops reading (a relay stops reading what the replica sends) while a
 * publisher goes on: past SLOW_CLIENT_MAX_BYTES it is closed, never skipped, so it holds a prefix
 * of the stream; it reconnects, re-subscribes from its last message and starts again whole.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`a delta subscriber that stops reading (TRANSPORT=${transport})`, () => {
    let redis: RedisProcess;
    let gw: Gateway;
    let relay: Relay;
    const closers: (() => void)[] = [];

    before(async () => {
      redis = await startRedis();
      gw = await startGateway({ env: { TRANSPORT: transport, REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'scores:* size=10000 delta', SLOW_CLIENT_MAX_BYTES: String(64 * 1024) } });
      relay = await startRelay(gw.port);
      await waitFor('the gateway ready', async () => (await getJson(`${gw.url}/readyz`)).status === 200);
    });
    after(async () => {
      for (const close of closers) close();
      await relay?.close();
      await gw?.stop();
      await redis?.stop();
    });

    it('is closed past the bound, comes back whole, and has every payload once and in order', async () => {
      const room = 'scores:slow';
      const socket = io(relay.url, { transports: ['websocket'], forceNew: true, reconnectionDelay: 20, reconnectionDelayMax: 200 });
      closers.push(() => socket.close());
      let connects = 0;
      socket.on('connect', () => connects++);
      const slow = new HeraldClient(socket);
      const slowGot = recorder(slow, 'score');
      await slow.subscribe(room, { delta: 'fossil' });
      const fast = new HeraldClient(io(gw.url, { transports: ['websocket'], forceNew: true }));
      closers.push(() => fast.socket.close());
      const fastGot = recorder(fast, 'score');
      await fast.subscribe(room, { delta: 'fossil' });

      // Half of each payload stays, half changes: each delta is about 2 KB, each whole about 4 KB.
      const fixed = 'f'.repeat(2048);
      const acked: Recorded[] = [];
      const publishOne = async () => {
        const data = { n: acked.length, fixed, changing: randomBytes(1536).toString('base64') };
        const r = await publish(gw.url, { room, event: 'score', data }, KEY);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        acked.push({ data, id: r.body.ids[room] as string });
      };
      const disconnects = async () => (await getJson(`${gw.url}/readyz`)).body.slowConsumerDisconnects as number;
      for (let i = 0; i < 10; i++) await publishOne();
      relay.hold();
      let held = 0;
      while (held < 4000 && (held % 25 !== 0 || (await disconnects()) < 1)) {
        await publishOne();
        held++;
      }
      relay.release();
      for (let i = 0; i < 20; i++) await publishOne();
      await waitFor('both have the last payload', () => [slowGot, fastGot].every((got) => got.at(-1)?.id === acked.at(-1)!.id), 20_000).catch((err: Error) =>
        assert.fail(`${err.message}: slow ${slowGot.length}, fast ${fastGot.length} of ${acked.length}; ${held} held, ${connects} connects`),
      );
      assert.ok((await disconnects()) >= 1);
      assert.ok(connects >= 2, `closed and reconnected (${connects} connects)`);
      assert.ok(slowGot.length === acked.length && slowGot.every((g, i) => g.id === acked[i]!.id), 'the slow client has every id once, in order');
      assert.deepEqual(slowGot, acked);
      assert.deepEqual(fastGot, acked);
      assert.equal(slow.stats.mismatches, 0);
      assert.ok(slow.stats.deltas > 0 && fast.stats.deltas > acked.length / 2);
      console.log(`# ${transport}: ${held} publishes while not reading; ${connects - 1} reconnects; slow client applied ${slow.stats.deltas} deltas`);
    });
  });
}

/**
 * A `herald:reset`: Redis is killed and comes back without its data, so the replica cannot fill
 * the gap and tells the room's members to reload. A delta subscriber's next message is whole; the
 * client module tells the app and re-subscribes from the reset's offset.
 */
describe('delta rooms across a herald:reset (Redis back without its data)', () => {
  let redis: RedisProcess;
  let gw: Gateway;
  const closers: (() => void)[] = [];

  before(async () => {
    redis = await startRedis();
    gw = await startGateway({ env: { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'scores:* delta' } });
    await waitFor('the gateway ready', async () => (await getJson(`${gw.url}/readyz`)).status === 200);
  });
  after(async () => {
    for (const close of closers) close();
    await gw?.stop();
    await redis?.stop();
  });

  it('sends whole messages after the reset, and the client module reloads and ends with every later payload', async () => {
    const room = 'scores:reset';
    const socket = io(gw.url, { transports: ['websocket'], forceNew: true });
    closers.push(() => socket.close());
    const resets: string[] = [];
    const herald = new HeraldClient(socket, { onReset: (r, reason) => resets.push(`${r} ${reason}`) });
    const got = recorder(herald, 'score');
    await herald.subscribe(room, { delta: 'fossil' });
    const raw = await connectClient(gw.url);
    closers.push(() => raw.close());
    assert.equal(((await raw.subscribe({ room, delta: 'fossil' })) as { ok: boolean }).ok, true);

    const before = await publishScores(gw, room, 0, 10);
    await waitFor('the first ten', () => got.length === 10 && raw.received.length === 10);
    await redis.kill();
    await redis.restart();
    // Publishes are refused (503) until the replica has Redis again.
    const data = score(100);
    const first: Recorded = await waitFor('a publish accepted again', async () => {
      const res = await publish(gw.url, { room, event: 'score', data }, KEY);
      return res.status === 200 ? { data, id: res.body.ids[room] as string } : undefined;
    });
    await waitFor('the reset', () => resets.length > 0 && raw.received.some((r) => r.event === 'herald:reset'));
    const after = await publishScores(gw, room, 101, 10);
    await waitFor('the last payload', () => got.at(-1)?.id === after.at(-1)!.id);

    const reset = raw.received.find((r) => r.event === 'herald:reset')!.data as { offset: string; code: string };
    assert.equal(reset.code, 'history_lost');
    const rawAfter = raw.received.slice(raw.received.findIndex((r) => r.event === 'herald:reset') + 1);
    assert.equal((rawAfter[0]!.meta as { base?: string }).base, undefined, 'the first message after the reset is whole');
    assert.ok(rawAfter.slice(2).some((r) => (r.meta as { base?: string }).base !== undefined), 'then deltas again');
    assert.deepEqual(resets, [`${room} reset`]);
    assert.deepEqual(got.slice(0, 10), before);
    const later = [first, ...after].filter((p) => compareIds(p.id, reset.offset) > 0);
    assert.deepEqual(got.slice(10), later);
    assert.equal(herald.stats.mismatches, 0);
  });
});
