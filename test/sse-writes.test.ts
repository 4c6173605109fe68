import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { compareIds } from '../src/protocol/ids.js';
import { publish } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { openSse, type SseReader } from './helpers/sse.js';
import { waitFor } from './helpers/wait.js';

/**
 * How streams are written (src/sse/stream.ts): a turn's messages to a stream in one write at the
 * end of the turn, and for history rooms the `id:` line built once for every stream in step with
 * another. What must hold whatever is shared: every stream gets each message once, in order, with
 * the `id:` of its own positions, and a `Last-Event-ID` taken anywhere resumes exactly after it.
 */
const KEY = 'sse-writes-publish-key-0123456789';
const BURST = 40;

/** `<tag>:<p1>,<p2>,...` split. */
function parseId(id: string): { tag: string; positions: string[] } {
  const [tag, rest] = [id.slice(0, id.indexOf(':')), id.slice(id.indexOf(':') + 1)];
  return { tag, positions: rest.split(',') };
}

/**
 * Checks a stream's published events against its history rooms (`rooms`, request order): each
 * event's `id:` holds the positions of the last event seen in every room (starting from `start`),
 * ids rise per room, none twice. Returns the meta ids per room.
 */
function checkIds(r: SseReader, rooms: string[], start: string[]): Record<string, string[]> {
  const at = [...start];
  const seen: Record<string, string[]> = Object.fromEntries(rooms.map((room) => [room, []]));
  let tag: string | undefined;
  for (const e of r.events) {
    if (e.event !== 'm') continue;
    const meta = e.data.meta!;
    const i = rooms.indexOf(meta.room);
    assert.notEqual(i, -1, `an event of ${meta.room}`);
    const list = seen[meta.room]!;
    if (list.length > 0) assert.ok(compareIds(list.at(-1)!, meta.id) < 0, `${meta.room}: ${meta.id} after ${list.at(-1)}, in order and once`);
    list.push(meta.id);
    at[i] = meta.id;
    assert.ok(e.id !== undefined, 'every message of a history room has its id: line');
    const parsed = parseId(e.id!);
    tag ??= parsed.tag;
    assert.equal(parsed.tag, tag, 'one tag per stream');
    assert.deepEqual(parsed.positions, at, `the id: of ${meta.room} ${meta.id} holds this stream's own positions`);
  }
  return seen;
}

for (const transport of ['uws', 'node'] as const) {
  describe(`event stream writes (TRANSPORT=${transport})`, () => {
    let gw: Gateway;
    const readers: SseReader[] = [];
    const open = async (query: string, headers: Record<string, string> = {}) => {
      const r = await openSse(`${gw.url}/v1/stream?${query}`, headers);
      assert.equal(r.status, 200, JSON.stringify(r.error));
      readers.push(r);
      await r.waitFor('every room subscribed', () => r.events.filter((e) => e.event === 'herald:subscribed').length === query.split('room=').length - 1);
      return r;
    };
    const pub = async (room: string, data: unknown) => {
      const res = await publish(gw.url, { room, event: 'm', data }, KEY);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return (res.body as { ids: Record<string, string> }).ids[room]!;
    };

    before(async () => {
      gw = await startGateway({ env: { TRANSPORT: transport, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'h:*', PUBLIC_ROOMS: 'h:*,p:*', ALLOW_ANONYMOUS: 'true' } });
    });
    after(async () => {
      for (const r of readers) r.close();
      await gw?.stop();
    });

    it('streams of the same history rooms at different positions: each message once, in order, with each stream its own id:; Last-Event-ID from the middle resumes the rest', async () => {
      const x = [await pub('h:x', 'x0'), await pub('h:x', 'x1'), await pub('h:x', 'x2')];
      const y = [await pub('h:y', 'y0'), await pub('h:y', 'y1')];
      // Fresh streams (in step with each other), one with the rooms the other way round (another tag).
      const fresh = [await open('room=h:x&room=h:y'), await open('room=h:x&room=h:y'), await open('room=h:x&room=h:y&room=p:z')];
      const reversed = await open('room=h:y&room=h:x');
      const subscribedId = fresh[0]!.events.filter((e) => e.event === 'herald:subscribed' && e.id !== undefined).at(-1)!.id!;
      const { tag } = parseId(subscribedId);
      // Resumed ones, behind the fresh ones by different amounts: they replay, then run live beside them.
      const behind = await open('room=h:x&room=h:y', { 'last-event-id': `${tag}:${x[0]},${y[0]}` });
      const lessBehind = await open('room=h:x&room=h:y', { 'last-event-id': `${tag}:${x[1]},${y[1]}` });
      assert.deepEqual(behind.events.filter((e) => e.event === 'm').map((e) => e.data.data), ['x1', 'x2', 'y1']);
      assert.deepEqual(lessBehind.events.filter((e) => e.event === 'm').map((e) => e.data.data), ['x2']);

      // A burst, several publishes at once (so one turn of the replica may deliver several), both rooms and a plain one.
      const burst = await Promise.all(Array.from({ length: BURST }, (_, i) => (i % 5 === 4 ? pub('p:z', `z${i}`) : pub(i % 2 === 0 ? 'h:x' : 'h:y', `b${i}`))));
      const live = { 'h:x': burst.filter((_, i) => i % 5 !== 4 && i % 2 === 0), 'h:y': burst.filter((_, i) => i % 5 !== 4 && i % 2 === 1) };
      const histLive = live['h:x'].length + live['h:y'].length;
      const count = (r: SseReader) => r.events.filter((e) => e.event === 'm').length;
      await waitFor('every stream has the burst', () =>
        fresh.slice(0, 2).every((r) => count(r) === histLive) &&
        count(fresh[2]!) === BURST &&
        count(reversed) === histLive &&
        count(behind) === histLive + 3 &&
        count(lessBehind) === histLive + 1,
      );

      const sorted = (ids: string[]) => [...ids].sort(compareIds);
      for (const r of [...fresh.slice(0, 2), reversed]) {
        const rooms = r === reversed ? ['h:y', 'h:x'] : ['h:x', 'h:y'];
        const start = rooms.map((room) => (room === 'h:x' ? x[2]! : y[1]!));
        const seen = checkIds(r, rooms, start);
        assert.deepEqual(seen['h:x'], sorted(live['h:x']));
        assert.deepEqual(seen['h:y'], sorted(live['h:y']));
      }
      {
        // The stream with a plain room too: its messages carry the id: in force, and arrive once each.
        const plain = fresh[2]!.events.filter((e) => e.event === 'm' && e.data.meta!.room === 'p:z');
        assert.equal(new Set(plain.map((e) => e.data.meta!.id)).size, BURST / 5);
      }
      const b = checkIds(behind, ['h:x', 'h:y'], [x[0]!, y[0]!]);
      assert.deepEqual(b['h:x'], [x[1], x[2], ...sorted(live['h:x'])]);
      assert.deepEqual(b['h:y'], [y[1], ...sorted(live['h:y'])]);
      const l = checkIds(lessBehind, ['h:x', 'h:y'], [x[1]!, y[1]!]);
      assert.deepEqual(l['h:x'], [x[2], ...sorted(live['h:x'])]);
      assert.deepEqual(l['h:y'], sorted(live['h:y']));

      // Resuming from the middle of a stream that shared its id: text with others: exactly the rest.
      const events = fresh[1]!.events.filter((e) => e.event === 'm');
      const cut = Math.floor(events.length / 2);
      const rest = events.slice(cut + 1).map((e) => e.data.meta!.id);
      const resumed = await open('room=h:x&room=h:y', { 'last-event-id': events[cut]!.lastEventId });
      assert.deepEqual(resumed.events.filter((e) => e.event === 'm').map((e) => e.data.meta!.id).sort(compareIds), sorted(rest));
    });
  });
}
