import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, publish, type TestClient } from './helpers/clients.js';
import { drop, reconnect, recoveringClient } from './helpers/recovery.js';
import { runGatewayToExit, startBackend, type Gateway } from './helpers/gateway.js';
import type { RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
const HISTORY_ROOMS = 'scores:* last=1, live:*';

type Ack = { ok: boolean; room?: string; offset?: string; recovered?: boolean; error?: { code: string; message: string } };

/**
 * Live state on subscribe (`last`): one contract, two backends, as in history.test.ts: in memory
 * on one gateway, and in Redis with the publisher on one replica and the subscribers on the other.
 */
for (const backend of ['memory', 'redis'] as const) {
  describe(`live state on subscribe (${backend})`, () => {
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
    const send = async (room: string, data: unknown) => {
      const res = await publish(publisherGw.url, { room, event: 'msg', data }, KEY);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.ids[room] as string;
    };
    const of = (c: TestClient, room: string) => c.received.filter((r) => r.meta?.room === room && r.event === 'msg');

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

    it('sends the last n before the ack, then live in order, with no gap and no duplicate while publishes race the subscribes', async () => {
      const N = 200;
      const rooms = { last3: 'live:race', roomDefault: 'scores:race' };
      // One publisher per room, each publish awaited: stream order is data order.
      const ids: Record<string, string[]> = { [rooms.last3]: [], [rooms.roomDefault]: [] };
      const publisher = async (room: string) => {
        for (let i = 1; i <= N; i++) ids[room]!.push(await send(room, i));
      };
      const publishing = Promise.all([publisher(rooms.last3), publisher(rooms.roomDefault)]);

      interface Joined {
        c: TestClient;
        room: string;
        n: number;
        /** Publishes acknowledged to the publisher before the subscribe was sent. */
        before: number;
        ack: Ack;
        /** Messages of the room the client had when the ack arrived. */
        atAck: number;
      }
      const joined: Joined[] = [];
      const join = async (room: string, arg: unknown, n: number) => {
        const c = await client();
        const published = ids[room]!.length;
        // Counted inside the ack callback: frames that arrived with the ack in one read are
        // handled before an `await` would resume.
        const { ack, atAck } = await new Promise<{ ack: Ack; atAck: number }>((resolve, reject) =>
          c.socket.timeout(5000).emit('subscribe', arg, (err: Error | null, ack: Ack) => (err ? reject(err) : resolve({ ack, atAck: of(c, room).length }))),
        );
        joined.push({ c, room, n, before: published, ack, atAck });
      };
      // Subscribers join at several points while both publishers run.
      for (const at of [5, 30, 60, 100, 140]) {
        await waitFor(`${at} publishes`, () => ids[rooms.last3]!.length >= at && ids[rooms.roomDefault]!.length >= at);
        await Promise.all([
          join(rooms.last3, { room: rooms.last3, last: 3 }, 3),
          // A plain subscribe to a `last=1` room, as an unmodified client sends it.
          join(rooms.roomDefault, rooms.roomDefault, 1),
        ]);
      }
      await publishing;
      for (const j of joined) await j.c.waitFor(`message ${N} in ${j.room}`, (r) => r.meta?.room === j.room && r.data === N);

      for (const j of joined) {
        const got = of(j.c, j.room);
        const data = got.map((r) => r.data as number);
        const first = data[0]!;
        const what = `${j.room} joined after ${j.before} publishes: ${JSON.stringify(data)}`;
        assert.equal(j.ack.ok, true, what);
        assert.deepEqual(data, Array.from({ length: N - first + 1 }, (_, i) => first + i), `in order, no gap, no duplicate: ${what}`);
        assert.deepEqual(got.map((r) => r.meta.id), ids[j.room]!.slice(first - 1), `meta.id is the stream offset: ${what}`);
        // The newest n at the moment of the subscribe, not older ones: the newest then was at least `before`.
        assert.ok(first >= j.before - j.n + 1, `starts with the newest ${j.n}: ${what}`);
        // The ack comes after them, and its offset is the last message sent before it.
        assert.ok(j.atAck >= j.n, `${j.n} before the ack (${j.atAck}): ${what}`);
        assert.equal(j.ack.offset, got[j.atAck - 1]!.meta.id, `offset is the last id before the ack: ${what}`);
      }
    });

    it('a last=1 room gives a plain subscriber the current message; last: 0 and since opt out', async () => {
      const room = 'scores:match-1';
      const empty = await client();
      const fresh = (await empty.subscribe(room)) as Ack;
      assert.equal(fresh.ok, true);
      assert.match(fresh.offset!, /^\d+-\d+$/, 'a room with no message yet still gives a position');
      assert.equal(of(empty, room).length, 0, 'nothing to send yet');

      const id1 = await send(room, { home: 0, away: 0 });
      await send(room, { home: 1, away: 0 });
      const id3 = await send(room, { home: 1, away: 1 });
      await empty.waitFor('live after an empty start', (r) => r.meta?.room === room && (r.data as { away: number }).away === 1);
      assert.equal(of(empty, room).length, 3);

      for (const arg of [room, { room }]) {
        const c = await client();
        const ack = (await c.subscribe(arg)) as Ack;
        assert.deepEqual(ack, { ok: true, room, offset: id3 });
        assert.deepEqual(of(c, room).map((r) => [r.data, r.meta.id]), [[{ home: 1, away: 1 }, id3]], `the current score, before the ack (${JSON.stringify(arg)})`);
      }

      const none = await client();
      assert.deepEqual(await none.subscribe({ room, last: 0 }), { ok: true, room, offset: id3 });
      const more = await client();
      assert.deepEqual(await more.subscribe({ room, last: 2 }), { ok: true, room, offset: id3 });
      assert.deepEqual(of(more, room).map((r) => r.data), [{ home: 1, away: 0 }, { home: 1, away: 1 }], 'an explicit last overrides the room option');
      // since wins over last and over the room option: a recovery gets exactly what it missed.
      const back = await client();
      assert.deepEqual(await back.subscribe({ room, since: id1, last: 3 }), { ok: true, room, offset: id3, recovered: true });
      assert.deepEqual(of(back, room).map((r) => r.data), [{ home: 1, away: 0 }, { home: 1, away: 1 }]);

      // Whatever was delivered before, the next message arrives once, after it, everywhere.
      const id4 = await send(room, { home: 2, away: 1 });
      for (const c of [none, more, back]) await c.waitFor('live', (r) => r.meta?.id === id4);
      assert.deepEqual(of(none, room).map((r) => r.meta.id), [id4], 'last: 0 sends nothing before live');

      // A room keeping fewer entries than asked gives what it has.
      await send('live:two', 'a');
      await send('live:two', 'b');
      const few = await client();
      assert.equal(((await few.subscribe({ room: 'live:two', last: 100 })) as Ack).ok, true);
      assert.deepEqual(of(few, 'live:two').map((r) => r.data), ['a', 'b']);
    });

    it('zero-code recovery in a last=1 room gives back what was missed, not the newest message again', async () => {
      const room = 'scores:recovered';
      const score = async (n: number) => {
        const res = await publish(publisherGw.url, { room, event: 'm', data: n }, KEY);
        assert.equal(res.status, 200, JSON.stringify(res.body));
      };
      await score(0);
      const { socket, got } = await recoveringClient(clientGw.url);
      try {
        assert.equal(((await socket.emitWithAck('subscribe', room)) as Ack).ok, true);
        await score(1);
        await waitFor('the current score, then the next', () => got.length === 2);
        await drop(socket);
        await score(2);
        await score(3);
        assert.deepEqual(await reconnect(socket), { recovered: true });
        await score(4);
        await waitFor('live after the recovery', () => got.some((g) => g.data === 4));
        assert.deepEqual(
          got.map((g) => g.data),
          [0, 1, 2, 3, 4],
          'the missed scores once, in order: the room option does not send the newest again',
        );
      } finally {
        socket.close();
      }
    });

    it('refuses last on a room without history, and malformed last values, with clear codes', async () => {
      const c = await client();
      const refused = (await c.subscribe({ room: 'plain', last: 1 })) as Ack;
      assert.equal(refused.ok, false);
      assert.equal(refused.error!.code, 'not_found');
      assert.match(refused.error!.message, /keeps no history.*HISTORY_ROOMS/);
      // Not joined either: a publish to it, then one to a room the client is in, and only the second arrives.
      assert.equal(((await c.subscribe('marker')) as Ack).ok, true);
      await send('plain', 'not for you');
      await send('marker', 'after');
      await c.waitFor('marker', (r) => r.meta?.room === 'marker');
      assert.equal(of(c, 'plain').length, 0);
      // since wins: a recovery into a room without history is answered as before.
      assert.deepEqual(await c.subscribe({ room: 'plain', since: '1-0', last: 1 }), { ok: true, room: 'plain', recovered: false });

      for (const last of [-1, 101, 1.5, '3', null, true]) {
        const bad = (await c.subscribe({ room: 'live:bad', last })) as Ack;
        assert.deepEqual([bad.ok, bad.error?.code], [false, 'bad_request'], `last: ${JSON.stringify(last)}`);
        assert.match(bad.error!.message, /"last" must be a whole number from 0 to 100/);
      }
      // The connection is still usable.
      assert.equal(((await c.subscribe({ room: 'live:bad', last: 100 })) as Ack).ok, true);
    });
  });
}

describe('HISTORY_ROOMS last= option', () => {
  it('refuses values past 100, zero, and more than the same entry keeps, naming the variable', async () => {
    for (const [rooms, says] of [
      ['scores:* last=101', /HISTORY_ROOMS has "last=101" for scores:\*: last= is at most 100/],
      ['scores:* last=0', /HISTORY_ROOMS has a bad option "last=0"/],
      ['scores:* size=2 last=3', /HISTORY_ROOMS has last=3 above size=2 for scores:\*/],
    ] as const) {
      const { code, stderr, stdout } = await runGatewayToExit({ HISTORY_ROOMS: rooms });
      assert.equal(code, 1, rooms);
      assert.match(stderr + stdout, says);
    }
  });
});
