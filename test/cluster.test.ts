import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Emitter } from '@socket.io/redis-emitter';
import { Redis } from 'ioredis';
import { connectClient, publish, type ClientTransport, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { rawHttp } from './helpers/raw.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
const TRANSPORTS = ['uws', 'node'] as const;

for (const transport of TRANSPORTS) {
  describe(`three replicas sharing rooms through Redis (TRANSPORT=${transport})`, () => {
    let redis: RedisProcess;
    let gateways: Gateway[] = [];
    const clients: TestClient[] = [];
    const client = async (gw: Gateway, t: ClientTransport = 'websocket') => {
      const c = await connectClient(gw.url, { transport: t });
      clients.push(c);
      return c;
    };

    before(async () => {
      redis = await startRedis();
      gateways = await Promise.all(
        [0, 1, 2].map(() => startGateway({ env: { TRANSPORT: transport, REDIS_URL: redis.url, PUBLISH_KEYS: KEY } })),
      );
      for (const gw of gateways) {
        const line = await gw.waitForLog('listening', (l) => l.msg === 'listening');
        assert.equal(line.transport, transport);
      }
    });

    after(async () => {
      for (const c of clients) c.close();
      await Promise.all(gateways.map((g) => g.stop()));
      await redis?.stop();
    });

    it('delivers one publish to every subscriber on every replica exactly once, and to no other room', async () => {
      // Two subscribers per replica (one WebSocket, one long-polling) and one client of another room.
      const subscribers: TestClient[] = [];
      const others: TestClient[] = [];
      for (const gw of gateways) {
        for (const t of ['websocket', 'polling'] as const) {
          const c = await client(gw, t);
          assert.equal(c.replica, gw.replicaId, 'herald:hello names the replica');
          assert.deepEqual(await c.subscribe('scores:match-1'), { ok: true, room: 'scores:match-1' });
          subscribers.push(c);
        }
        const o = await client(gw);
        assert.deepEqual(await o.subscribe({ room: 'scores:match-2' }), { ok: true, room: 'scores:match-2' });
        others.push(o);
      }

      const before = Date.now();
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        const res = await publish(gateways[0]!.url, { room: 'scores:match-1', event: 'score', data: { i } }, KEY);
        assert.equal(res.status, 200);
        assert.equal(typeof res.body.id, 'string');
        ids.push(res.body.id);
      }
      const afterPublish = Date.now();
      assert.equal(new Set(ids).size, ids.length, 'ids are unique');
      // Sentinels published after everything else: once each arrives, any duplicate would have too.
      await publish(gateways[0]!.url, { room: 'scores:match-1', event: 'end', data: null }, KEY);
      await publish(gateways[0]!.url, { room: 'scores:match-2', event: 'end', data: null }, KEY);
      await Promise.all([...subscribers, ...others].map((c) => c.waitFor('end sentinel', (r) => r.event === 'end')));

      for (const c of subscribers) {
        const scores = c.received.filter((r) => r.event === 'score');
        assert.deepEqual(
          scores.map((r) => r.meta.id),
          ids,
          'each message exactly once, in publish order',
        );
        scores.forEach((r, i) => {
          assert.deepEqual(r.data, { i });
          assert.equal(r.meta.room, 'scores:match-1');
          assert.ok(r.meta.ts >= before && r.meta.ts <= afterPublish, 'ts is the publish time');
        });
      }
      for (const o of others) {
        assert.deepEqual(
          o.received.map((r) => r.event),
          ['end'],
          'a client of another room receives none of them',
        );
      }
    });

    it("delivers a publish to a connection's own id room to that connection alone, whatever its replica and transport", async () => {
      // On uWS herald keeps sockets off their id room's topic and writes to its members directly.
      const targets: TestClient[] = [];
      const ends: string[] = [];
      for (const gw of gateways) {
        for (const t of ['websocket', 'polling', 'upgrade'] as const) {
          targets.push(await client(gw, t));
          ends.push(t === 'polling' ? 'polling' : 'websocket');
        }
      }
      await waitFor('the upgrades', () => targets.every((c, i) => c.socket.io.engine.transport.name === ends[i]));
      // Another connection's id (herald:join tells it to room members) is not a room to subscribe to:
      // a publish to a connection reaches that connection alone.
      const namesake = await client(gateways[2]!);
      for (const target of targets) {
        const refused = (await namesake.subscribe({ room: target.socket.id })) as { ok: boolean; error: { code: string } };
        assert.deepEqual([refused.ok, refused.error.code], [false, 'forbidden'], `subscribe to ${target.socket.io.engine.transport.name} connection's id`);
      }
      for (const [i, target] of targets.entries()) {
        const res = await publish(gateways[i % 3]!.url, { room: target.socket.id!, event: 'direct', data: i }, KEY);
        assert.equal(res.status, 200);
      }
      for (const c of [...targets, namesake]) {
        await publish(gateways[0]!.url, { room: c.socket.id!, event: 'end', data: null }, KEY);
        await c.waitFor('end sentinel', (r) => r.event === 'end');
      }
      for (const [i, target] of targets.entries()) {
        assert.deepEqual(target.received.filter((r) => r.event === 'direct').map((r) => r.data), [i], `target ${i} (${target.socket.io.engine.transport.name})`);
      }
      assert.deepEqual(namesake.received.filter((r) => r.event === 'direct').map((r) => r.data), [], 'nothing addressed to another connection');
    });

    it('publishes to several rooms at once, one delivery per subscribed room', async () => {
      const both = await client(gateways[1]!);
      await both.subscribe('multi:a');
      await both.subscribe('multi:b');
      const onlyB = await client(gateways[2]!);
      await onlyB.subscribe('multi:b');
      const res = await publish(gateways[0]!.url, { rooms: ['multi:a', 'multi:b'], event: 'news', data: 'x' }, KEY);
      assert.equal(res.status, 200);
      await both.waitFor('multi:a', (r) => r.meta?.room === 'multi:a');
      await both.waitFor('multi:b', (r) => r.meta?.room === 'multi:b');
      await onlyB.waitFor('multi:b', (r) => r.meta?.room === 'multi:b');
      await publish(gateways[0]!.url, { rooms: ['multi:a', 'multi:b'], event: 'end', data: null }, KEY);
      await both.waitFor('end', (r) => r.event === 'end' && r.meta.room === 'multi:b');
      await onlyB.waitFor('end', (r) => r.event === 'end');
      assert.deepEqual(both.received.filter((r) => r.event === 'news').map((r) => [r.meta.room, r.meta.id]).sort(), [
        ['multi:a', res.body.id],
        ['multi:b', res.body.id],
      ]);
      assert.deepEqual(onlyB.received.filter((r) => r.event === 'news').map((r) => r.meta.room), ['multi:b']);
    });

    it('stops delivering to a client after it unsubscribes', async () => {
      const c = await client(gateways[2]!);
      await c.subscribe('chat:1');
      await c.subscribe('control');
      await publish(gateways[0]!.url, { room: 'chat:1', event: 'msg', data: 'before' }, KEY);
      await c.waitFor('before', (r) => r.data === 'before');
      assert.deepEqual(await c.unsubscribe('chat:1'), { ok: true, room: 'chat:1' });
      await publish(gateways[0]!.url, { room: 'chat:1', event: 'msg', data: 'after' }, KEY);
      await publish(gateways[0]!.url, { room: 'control', event: 'end', data: null }, KEY);
      await c.waitFor('control sentinel', (r) => r.event === 'end');
      assert.deepEqual(c.received.filter((r) => r.event === 'msg').map((r) => r.data), ['before']);
    });

    it('delivers what a backend emits straight into Redis with @socket.io/redis-emitter', async () => {
      const subs = await Promise.all(gateways.map((gw) => client(gw)));
      for (const s of subs) await s.subscribe('orders:7');
      const redisClient = new Redis(redis.url);
      try {
        const emitter = new Emitter(redisClient);
        emitter.to('orders:7').emit('order', { status: 'shipped' }, { room: 'orders:7', id: 'e-1', ts: 1 });
        await Promise.all(subs.map((s) => s.waitFor('emitter message', (r) => r.event === 'order')));
        for (const s of subs) {
          assert.deepEqual(s.received, [
            { event: 'order', data: { status: 'shipped' }, meta: { room: 'orders:7', id: 'e-1', ts: 1 } },
          ]);
        }
      } finally {
        await redisClient.quit();
      }
    });

    it('answers bad subscribe calls with an error ack and keeps the connection usable', async () => {
      const c = await client(gateways[0]!);
      const bad: unknown[] = ['', 'has space', 'x'.repeat(129), 'wild*', 42, null, { room: 5 }, ['a'], { nope: 1 }];
      for (const arg of bad) {
        const ack = (await c.subscribe(arg)) as { ok: boolean; error: { code: string } };
        assert.equal(ack.ok, false, `subscribe(${JSON.stringify(arg)})`);
        assert.equal(ack.error.code, 'invalid_room');
      }
      const own = (await c.subscribe(c.socket.id)) as { ok: boolean; error: { code: string } };
      assert.deepEqual([own.ok, own.error.code], [false, 'forbidden']);
      assert.equal(((await c.unsubscribe('bad room')) as { ok: boolean }).ok, false);
      assert.deepEqual(await c.subscribe('x'.repeat(128)), { ok: true, room: 'x'.repeat(128) });
      await publish(gateways[1]!.url, { room: 'x'.repeat(128), event: 'still', data: 1 }, KEY);
      await c.waitFor('delivery after bad input', (r) => r.event === 'still');
    });

    it('answers bad publish requests with documented errors', async () => {
      const url = gateways[0]!.url;
      const cases: [string, unknown, string | undefined, number, string][] = [
        ['no key', { room: 'a', event: 'e' }, undefined, 401, 'unauthorized'],
        ['wrong key', { room: 'a', event: 'e' }, 'wrong-key-wrong-key-wrong', 401, 'unauthorized'],
        ['bad JSON', '{"room":', KEY, 400, 'invalid_json'],
        ['not an object', '[1,2]', KEY, 400, 'bad_request'],
        ['missing event', { room: 'a' }, KEY, 400, 'bad_request'],
        ['missing room', { event: 'e' }, KEY, 400, 'bad_request'],
        ['room and rooms', { room: 'a', rooms: ['b'], event: 'e' }, KEY, 400, 'bad_request'],
        ['empty rooms', { rooms: [], event: 'e' }, KEY, 400, 'bad_request'],
        ['unknown field', { room: 'a', event: 'e', extra: 1 }, KEY, 400, 'bad_request'],
        ['__proto__ field', '{"room":"a","event":"e","__proto__":{"polluted":1}}', KEY, 400, 'bad_request'],
        ['bad room', { room: 'no spaces', event: 'e' }, KEY, 400, 'invalid_room'],
        ['bad room in list', { rooms: ['ok', '$'], event: 'e' }, KEY, 400, 'invalid_room'],
        ['reserved event', { room: 'a', event: 'disconnect' }, KEY, 400, 'invalid_event'],
        ['herald: event', { room: 'a', event: 'herald:hello' }, KEY, 400, 'invalid_event'],
        ['event not a string', { room: 'a', event: 7 }, KEY, 400, 'invalid_event'],
        ['over 64 KiB', { room: 'a', event: 'e', data: 'x'.repeat(70_000) }, KEY, 413, 'payload_too_large'],
      ];
      for (const [name, body, key, status, code] of cases) {
        const res = await publish(url, body, key);
        assert.equal(res.status, status, name);
        assert.equal(res.body.error.code, code, name);
        assert.equal(typeof res.body.error.message, 'string', name);
      }
      assert.equal(({} as Record<string, unknown>).polluted, undefined);

      // Chunked, with no Content-Length: the limit applies to the streamed total.
      const chunk = new TextEncoder().encode('x'.repeat(16 * 1024));
      let sent = 0;
      const chunked = await fetch(`${url}/v1/publish`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}` },
        body: new ReadableStream({
          pull(controller) {
            if (sent++ < 8) controller.enqueue(chunk);
            else controller.close();
          },
        }),
        duplex: 'half',
      } as RequestInit);
      assert.equal(chunked.status, 413);
      assert.equal(((await chunked.json()) as any).error.code, 'payload_too_large');

      // Declared past the discard bound (16 MiB): answered at once, without waiting for (or reading) the body.
      const raw = await rawHttp(
        gateways[0]!.port,
        `POST /v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: 100000000\r\n\r\n{"room":`,
      );
      assert.match(raw, /^HTTP\/1\.1 413 /);
      assert.match(raw, /"code":"payload_too_large"/);

      const get = await fetch(`${url}/v1/publish`);
      assert.equal(get.status, 405);
      assert.equal(((await get.json()) as any).error.code, 'method_not_allowed');
      const missing = await fetch(`${url}/nope`);
      assert.equal(missing.status, 404);
      assert.equal(missing.headers.get('x-herald-replica'), gateways[0]!.replicaId);
      // Still serving after all of that.
      assert.equal((await publish(url, { room: 'a', event: 'e', data: 1 }, KEY)).status, 200);
    });
  });
}

