import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deflateRawSync } from 'node:zlib';
import WebSocket, { type PerMessageDeflateOptions } from 'ws';
import { connectClient, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
/** CLIENT_MAX_BYTES for these gateways (its default). */
const CAP = 65536;

/** A score update with a long timeline: about 10 KB of JSON that deflate shrinks well. */
const timeline = {
  match: 'epl-2026-27-md14-ars-che',
  status: 'live',
  minute: 67,
  score: { home: 2, away: 1 },
  events: Array.from({ length: 100 }, (_, i) => ({ minute: i % 90, type: i % 7 === 0 ? 'goal' : 'shot', team: i % 2 ? 'home' : 'away', player: `Player ${i % 11}` })),
};
const TIMELINE_BYTES = JSON.stringify(timeline).length;
/** A score update as live-score pages get them: about 400 bytes of JSON. */
const score = {
  match: 'epl-2026-27-md14-ars-che',
  status: 'live',
  minute: 67,
  home: { id: 'ars', name: 'Arsenal', score: 2 },
  away: { id: 'che', name: 'Chelsea', score: 1 },
  lastEvent: { type: 'goal', team: 'ars', player: 'B. Saka', minute: 66, assist: 'M. Odegaard' },
  stats: { possession: [56, 44], shots: [14, 8], shotsOnTarget: [6, 3], corners: [7, 2], fouls: [9, 12], yellowCards: [1, 2] },
  updatedAt: '2026-11-22T15:53:07.412Z',
};

/** Bytes the TCP socket under a `ws` WebSocket has read so far, frame headers and all. */
const bytesRead = (ws: WebSocket): number => (ws as unknown as { _socket: { bytesRead: number } })._socket.bytesRead;
/** socket.io-client's `ws` WebSocket (Node), once on the WebSocket transport. */
const wsOf = (c: TestClient): WebSocket => (c.socket.io.engine.transport as unknown as { ws: WebSocket }).ws;

/** A WebSocket speaking Engine.IO v4 by hand, with the permessage-deflate offer chosen by the test. */
interface Raw {
  ws: WebSocket;
  frames: string[];
  closed: Promise<number>;
  next(what: string, match: (f: string) => boolean): Promise<string>;
}

async function raw(url: string, perMessageDeflate: false | PerMessageDeflateOptions): Promise<Raw> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`, { perMessageDeflate });
  const frames: string[] = [];
  ws.on('message', (data) => {
    const text = (data as Buffer).toString();
    if (text === '2') ws.send('3');
    frames.push(text);
  });
  ws.on('error', () => {});
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  let seen = 0;
  const next = async (what: string, match: (f: string) => boolean) => {
    const at = await waitFor(what, () => {
      const i = frames.findIndex((f, k) => k >= seen && match(f));
      return i === -1 ? undefined : i + 1;
    });
    seen = at;
    return frames[at - 1]!;
  };
  const r = { ws, frames, closed, next };
  await next('open packet', (f) => f.startsWith('0{'));
  ws.send('40');
  await next('namespace connect', (f) => f.startsWith('40{'));
  return r;
}

async function rawSubscribe(r: Raw, room: string): Promise<void> {
  r.ws.send(`420${JSON.stringify(['subscribe', room])}`);
  const ack = await r.next('subscribe ack', (f) => f.startsWith('430'));
  assert.equal(JSON.parse(ack.slice(3))[0].ok, true, ack);
}

/** The `[event, data, meta]` of Socket.IO event frames in `room`. */
const eventsIn = (r: Raw, room: string) =>
  r.frames.filter((f) => f.startsWith('42[')).map((f) => JSON.parse(f.slice(2)) as [string, unknown, { room: string }]).filter((e) => e[2]?.room === room);

for (const transport of ['uws', 'node'] as const) {
  describe(`WebSocket compression (${transport} transport)`, () => {
    let on: Gateway;
    let off: Gateway;
    const clients: TestClient[] = [];
    const raws: Raw[] = [];

    const client = async (gw: Gateway, t: 'websocket' | 'upgrade' = 'websocket') => {
      const c = await connectClient(gw.url, { transport: t });
      clients.push(c);
      return c;
    };
    const rawClient = async (gw: Gateway, pmd: false | PerMessageDeflateOptions) => {
      const r = await raw(gw.url, pmd);
      raws.push(r);
      return r;
    };
    const send = async (gw: Gateway, room: string, data: unknown) => {
      const res = await publish(gw.url, { room, event: 'score', data }, KEY);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.ids[room] as string;
    };

    before(async () => {
      const env = { TRANSPORT: transport, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'hist:*' };
      [on, off] = await Promise.all([startGateway({ env: { ...env, WS_COMPRESSION: 'on' } }), startGateway({ env })]);
      for (const gw of [on, off]) assert.equal((await gw.waitForLog('listening', (l) => l.msg === 'listening')).transport, transport);
    });

    after(async () => {
      for (const c of clients) c.close();
      for (const r of raws) r.ws.terminate();
      await Promise.all([on, off].map((g) => g.stop()));
    });

    it('socket.io-client negotiates permessage-deflate and receives broadcasts and replays intact, in fewer bytes', async () => {
      const room = 'feed:sio';
      const c = await client(on);
      assert.match(wsOf(c).extensions, /permessage-deflate/);
      await c.subscribe(room);
      const before = bytesRead(wsOf(c));
      await send(on, room, timeline);
      const got = await c.waitFor('the timeline', (r) => r.meta?.room === room);
      const wire = bytesRead(wsOf(c)) - before;
      assert.deepEqual(got.data, timeline);
      assert.ok(wire < TIMELINE_BYTES / 3, `room broadcast: ${wire} bytes on the wire for ${TIMELINE_BYTES} of JSON`);

      // A replay (`since`) is written to the one socket directly, not published to the room's topic.
      const id0 = await send(on, 'hist:sio', { minute: 0 });
      await send(on, 'hist:sio', timeline);
      const back = await client(on);
      const mark = bytesRead(wsOf(back));
      assert.equal(((await back.subscribe({ room: 'hist:sio', since: id0 })) as { recovered: boolean }).recovered, true);
      const replayed = back.received.filter((r) => r.meta?.room === 'hist:sio');
      const replayWire = bytesRead(wsOf(back)) - mark;
      assert.deepEqual(replayed.map((r) => r.data), [timeline]);
      assert.ok(replayWire < TIMELINE_BYTES / 3, `replay: ${replayWire} bytes on the wire for ${TIMELINE_BYTES} of JSON`);

      // Long-polling first, then the upgrade: the same message arrives intact.
      const upgrading = await client(on, 'upgrade');
      await upgrading.subscribe(room);
      await send(on, room, { ...timeline, minute: 68 });
      const late = await upgrading.waitFor('after the upgrade', (r) => r.meta?.room === room);
      assert.deepEqual(late.data, { ...timeline, minute: 68 });
    });

    it('compresses a score update of a few hundred bytes too, live and replayed (Engine.IO alone would start at 1024)', async () => {
      const room = 'hist:score';
      const live = await client(on);
      await live.subscribe(room);
      const mark = bytesRead(wsOf(live));
      const id = await send(on, room, score);
      const got = await live.waitFor('the score', (r) => r.meta?.id === id);
      const frame = Buffer.byteLength(`42${JSON.stringify(['score', score, got.meta])}`);
      const wire = bytesRead(wsOf(live)) - mark;
      assert.deepEqual(got.data, score);
      assert.ok(frame > 400 && frame < 1024, `a ${frame}-byte frame`);
      assert.ok(wire < frame * 0.8, `live: ${wire} bytes on the wire for a ${frame}-byte frame`);

      const late = await client(on);
      const before = bytesRead(wsOf(late));
      const ack = (await late.subscribe({ room, last: 1 })) as { offset: string };
      assert.equal(ack.offset, id);
      assert.deepEqual(late.received.filter((r) => r.meta?.room === room).map((r) => r.data), [score]);
      // The ack and the replayed score: the ack is under the threshold and goes out as it is.
      const ackBytes = Buffer.byteLength(`431${JSON.stringify([{ ok: true, room, offset: id }])}`);
      const replayWire = bytesRead(wsOf(late)) - before - ackBytes;
      assert.ok(replayWire < frame * 0.8, `replayed: ${replayWire} bytes on the wire (ack excluded) for a ${frame}-byte frame`);
    });

    it('a raw ws client that compresses its own frames is understood, and one that offers nothing gets plain frames', async () => {
      const room = 'feed:raw';
      // threshold 0: every frame this client sends is deflated, the subscribe included.
      const deflating = await rawClient(on, { threshold: 0 });
      const plain = await rawClient(on, false);
      assert.match(deflating.ws.extensions, /permessage-deflate/);
      assert.equal(plain.ws.extensions, '');
      await rawSubscribe(deflating, room);
      await rawSubscribe(plain, room);
      const marks = [bytesRead(deflating.ws), bytesRead(plain.ws)];
      const small = { home: 2, away: 1, minute: 67 };
      await send(on, room, timeline);
      await send(on, room, small);
      for (const r of [deflating, plain]) await waitFor('both messages', () => eventsIn(r, room).length === 2);
      for (const r of [deflating, plain]) assert.deepEqual(eventsIn(r, room).map((e) => e[1]), [timeline, small]);
      const [compressed, uncompressed] = [bytesRead(deflating.ws) - marks[0]!, bytesRead(plain.ws) - marks[1]!];
      assert.ok(compressed < TIMELINE_BYTES / 3, `negotiated: ${compressed} bytes`);
      assert.ok(uncompressed > TIMELINE_BYTES, `not negotiated: ${uncompressed} bytes, sent as they are`);
    });

    it('a compressed frame that inflates past CLIENT_MAX_BYTES closes that connection only', async () => {
      const room = 'feed:bomb';
      const bystander = await client(on);
      await bystander.subscribe(room);
      const bomb = await rawClient(on, { threshold: 0 });
      assert.match(bomb.ws.extensions, /permessage-deflate/, 'the frame below goes out compressed');
      await rawSubscribe(bomb, room);
      const message = `42${JSON.stringify(['publish', { room, event: 'score', data: 'a'.repeat(2 * 1024 * 1024) }])}`;
      const onTheWire = deflateRawSync(message).length;
      assert.ok(onTheWire < CAP / 10, `the frame itself (${onTheWire} bytes) is far below the cap; only its inflated size is not`);
      bomb.ws.send(message);
      // uWS stops inflating at maxPayloadLength and closes without a close frame; ws answers 1009.
      assert.equal(await bomb.closed, transport === 'uws' ? 1006 : 1009);
      assert.equal(eventsIn(bomb, room).length, 0);
      assert.equal(on.process.exitCode, null, 'the gateway is still up');
      // Everyone else is still served.
      await send(on, room, laterScore());
      await bystander.waitFor('a publish after the refusal', (r) => r.meta?.room === room);
      assert.deepEqual(bystander.received.filter((r) => r.meta?.room === room).map((r) => r.data), [laterScore()]);
      assert.equal(bystander.socket.connected, true);
    });

    it('is off by default: nothing is negotiated and messages go out as they are', async () => {
      const room = 'feed:off';
      const c = await client(off);
      assert.equal(wsOf(c).extensions, '', 'socket.io-client offered permessage-deflate; the gateway declined');
      await c.subscribe(room);
      const before = bytesRead(wsOf(c));
      await send(off, room, timeline);
      const got = await c.waitFor('the timeline', (r) => r.meta?.room === room);
      assert.deepEqual(got.data, timeline);
      assert.ok(bytesRead(wsOf(c)) - before > TIMELINE_BYTES);
    });
  });
}

function laterScore() {
  return { home: 3, away: 1, minute: 81 };
}
