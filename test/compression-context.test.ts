import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { io } from 'socket.io-client';
import type WebSocket from 'ws';
import { HeraldClient } from '../client/src/index.js';
import { ConfigError, loadConfig } from '../src/config/load.js';
import { connectClient, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { waitFor } from './helpers/wait.js';

// WS_COMPRESSION=context: permessage-deflate with the server's window kept from one message to the
// next (uWS's dedicated compressor, `ws` with context takeover), against real socket.io-clients.

const KEY = 'test-publish-key-0123456789';

/** A live score of about 400 bytes as JSON; the minute, the shots and the time change per update. */
function score(n: number) {
  return {
    match: 'epl-2026-27-md14-ars-che',
    status: 'live',
    minute: 1 + (n % 90),
    period: n % 90 < 45 ? '1H' : '2H',
    home: { id: 'ars', name: 'Arsenal', score: 2 },
    away: { id: 'che', name: 'Chelsea', score: 1 },
    lastEvent: { type: 'goal', team: 'ars', player: 'B. Saka', minute: 66, assist: 'M. Odegaard' },
    stats: { possession: [56, 44], shots: [14 + (n % 3), 8], shotsOnTarget: [6, 3], corners: [7, 2] },
    note: `update ${n} ${'é✓'.repeat(n % 4)}`,
    updatedAt: new Date(1_795_239_768_439 + n * 1000).toISOString(),
  };
}

/** Bytes the TCP socket under a `ws` WebSocket has read so far, frame headers and all. */
const bytesRead = (ws: WebSocket): number => (ws as unknown as { _socket: { bytesRead: number } })._socket.bytesRead;
/** socket.io-client's `ws` WebSocket (Node), once on the WebSocket transport. */
const wsOf = (c: TestClient): WebSocket => (c.socket.io.engine.transport as unknown as { ws: WebSocket }).ws;

/** Messages in a row: far more than a 4 KiB window holds, so the window slides while they arrive. */
const IN_A_ROW = 300;

describe('WS_COMPRESSION values', () => {
  it('off, on and context; anything else is refused with config_invalid', () => {
    assert.equal(loadConfig({}).wsCompression, false);
    assert.equal(loadConfig({ WS_COMPRESSION: 'off' }).wsCompression, false);
    assert.equal(loadConfig({ WS_COMPRESSION: 'on' }).wsCompression, 'shared');
    assert.equal(loadConfig({ WS_COMPRESSION: 'context' }).wsCompression, 'context');
    for (const bad of ['true', 'dedicated', 'CONTEXT ']) {
      assert.throws(
        () => loadConfig({ WS_COMPRESSION: bad }),
        (err: unknown) => err instanceof ConfigError && err.code === 'config_invalid' && /WS_COMPRESSION/.test(err.message),
        bad,
      );
    }
  });
});

for (const transport of ['uws', 'node'] as const) {
  describe(`WS_COMPRESSION=context (${transport} transport)`, () => {
    let gw: Gateway;
    const closers: (() => void)[] = [];

    const send = async (room: string, data: unknown) => {
      const res = await publish(gw.url, { room, event: 'score', data }, KEY);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.ids[room] as string;
    };
    const client = async () => {
      const c = await connectClient(gw.url, { transport: 'websocket' });
      closers.push(() => c.close());
      return c;
    };

    before(async () => {
      gw = await startGateway({ env: { TRANSPORT: transport, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'scores:* delta', WS_COMPRESSION: 'context' } });
      assert.equal((await gw.waitForLog('listening', (l) => l.msg === 'listening')).transport, transport);
    });

    after(async () => {
      for (const close of closers) close();
      await gw.stop();
    });

    it('negotiates context takeover, and many messages in a row arrive intact and in order, in fewer bytes than each deflated alone would take', async () => {
      const room = 'feed:row';
      const a = await client();
      const b = await client();
      for (const c of [a, b]) {
        const ext = wsOf(c).extensions;
        assert.match(ext, /permessage-deflate/);
        assert.doesNotMatch(ext, /server_no_context_takeover/, `the server keeps its window: ${ext}`);
        await c.subscribe(room);
      }
      const marks = [a, b].map((c) => bytesRead(wsOf(c)));
      const sent = [];
      let frames = 0;
      for (let n = 0; n < IN_A_ROW; n++) {
        const data = score(n);
        const id = await send(room, data);
        sent.push(data);
        frames += Buffer.byteLength(`42${JSON.stringify(['score', data, { room, id, ts: Date.now() }])}`);
        // A short message between the long ones now and then: under the threshold, it goes out uncompressed.
        if (n % 50 === 7) await send(room, { n });
      }
      for (const c of [a, b]) {
        await waitFor(`all ${IN_A_ROW} scores`, () => c.received.filter((r) => r.meta?.room === room && r.event === 'score').length >= IN_A_ROW + Math.ceil(IN_A_ROW / 50));
        const got = c.received.filter((r) => r.meta?.room === room).map((r) => r.data);
        const expected: unknown[] = [];
        for (let n = 0; n < IN_A_ROW; n++) {
          expected.push(sent[n]);
          if (n % 50 === 7) expected.push({ n });
        }
        assert.deepEqual(got, expected);
      }
      // node transport: each ~500-byte frame deflated alone shrinks to about 62 %; with a 4 KiB
      // window kept, what repeats from the previous message (all but a few fields) costs a few
      // bytes. uWS: this build runs every dedicated compressor with a 512-byte window (the
      // handshake says server_max_window_bits=9), which reaches back about 250 bytes, less than
      // one of these frames, so only the contents arriving intact is checked there (the delta
      // test below checks the bytes on uWS, where a frame fits in that reach).
      if (transport === 'node') {
        for (const [i, c] of [a, b].entries()) {
          const wire = bytesRead(wsOf(c)) - marks[i]!;
          assert.ok(wire < frames * 0.35, `${wire} bytes on the wire for ${frames} bytes of frames`);
        }
      }
    });

    it('a delta room: deltas over a compressed stream rebuild every published payload, and a client joining late starts its own window', async () => {
      const room = 'scores:ctx';
      const heralds: { herald: HeraldClient; got: unknown[] }[] = [];
      const newHerald = async () => {
        const socket = io(gw.url, { transports: ['websocket'], forceNew: true, reconnection: false });
        closers.push(() => socket.close());
        const herald = new HeraldClient(socket);
        const got: unknown[] = [];
        herald.on('score', (data) => got.push(data));
        await herald.subscribe(room, { delta: 'fossil' });
        heralds.push({ herald, got });
        return { herald, got };
      };
      await newHerald();
      const wire = await client();
      assert.equal(((await wire.subscribe({ room, delta: 'fossil' })) as { ok: boolean }).ok, true);
      let mark = 0;
      let deltaFrames = 0;
      const sent: unknown[] = [];
      for (let n = 0; n < 120; n++) {
        if (n === 60) await newHerald();
        if (n === 20) mark = bytesRead(wsOf(wire));
        sent.push(score(n));
        await send(room, score(n));
      }
      const [first, late] = heralds as [(typeof heralds)[0], (typeof heralds)[0]];
      await waitFor('the first client has all', () => first.got.length >= 120);
      await waitFor('the late client has the second half', () => late.got.length >= 60);
      assert.deepEqual(first.got, sent);
      assert.deepEqual(late.got, sent.slice(60));
      for (const { herald } of heralds) {
        assert.equal(herald.stats.mismatches, 0);
        assert.ok(herald.stats.deltas > 50, `${herald.stats.deltas} deltas applied`);
      }
      await waitFor('the raw client has all', () => wire.received.filter((r) => r.meta?.room === room).length >= 120);
      const bases = wire.received.filter((r) => r.meta?.room === room && (r.meta as { base?: string }).base !== undefined).length;
      assert.equal(bases, 119, 'every message after the first is a delta');
      // From the 21st on, with the same meta and a delta of a few dozen bytes each: the window
      // makes the repeated meta back-references (each delta frame alone deflates to ~80 %).
      for (const r of wire.received.filter((r) => r.meta?.room === room).slice(20)) deltaFrames += Buffer.byteLength(`42${JSON.stringify(['score', r.data, r.meta])}`);
      const deltaWire = bytesRead(wsOf(wire)) - mark;
      assert.ok(deltaWire < deltaFrames * 0.5, `${deltaWire} bytes on the wire for ${deltaFrames} bytes of delta frames`);
    });
  });
}
