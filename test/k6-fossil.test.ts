import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { applyDelta as fossilApply, createDelta } from 'fossil-delta';
import WebSocket from 'ws';
import { applyDelta, checksum, deltaReceiver, portable, utf8Decode, utf8Encode, utf8Length } from '../loadtest/lib/fossil.js';
import { connectFrame, eventFrame, isEventFrame, parseFrame, PONG, socketUrl } from '../loadtest/lib/socketio.js';
import { deltaString } from '../src/history/delta.js';
import { publish } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { waitFor } from './helpers/wait.js';

/**
 * loadtest/lib/fossil.js: the fossil delta apply the k6 scripts run (fanout-latency DELTA=1), in
 * plain JavaScript because k6 has no npm. Checked here under Node against the delta library herald
 * computes its deltas with (fossil-delta's createDelta), as herald encodes them (one character per
 * byte), and end to end against a gateway, read through the same wire module k6 uses.
 */

/** A deterministic PRNG (mulberry32), so a failure replays. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes as one character per byte, how herald sends a delta. */
const bin = (a: Uint8Array | number[]) => Buffer.from(a as Uint8Array).toString('latin1');
const bytes = (s: string) => Uint8Array.from(Buffer.from(s, 'latin1'));

/** A source of random bytes and a target made from it by random edits (replace, insert, delete, move). */
function pair(rand: () => number, size: number): { source: Uint8Array; target: Uint8Array } {
  const bytes = (n: number) => Array.from({ length: n }, () => Math.floor(rand() * 256));
  const source = bytes(size);
  let target = source.slice();
  const edits = Math.floor(rand() * 8);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * (target.length + 1));
    const len = Math.floor(rand() * 40);
    const kind = Math.floor(rand() * 4);
    if (kind === 0) target.splice(at, len, ...bytes(len));
    else if (kind === 1) target.splice(at, 0, ...bytes(len));
    else if (kind === 2) target.splice(at, len);
    else target = [...target.slice(at), ...target.slice(0, at)];
  }
  return { source: Uint8Array.from(source), target: Uint8Array.from(target) };
}

const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~';
/** An integer as fossil writes it. */
function base64(v: number): string {
  let s = '';
  do {
    s = DIGITS[v % 64] + s;
    v = Math.floor(v / 64);
  } while (v > 0);
  return s;
}

const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;

describe('k6 fossil apply (loadtest/lib/fossil.js) against fossil-delta', () => {
  it('applies createDelta output exactly: 400 random pairs, every byte value, empty and large ones', () => {
    const rand = prng(28);
    const cases = Array.from({ length: 400 }, (_, i) => pair(rand, i < 10 ? i : Math.floor(rand() * 3000)));
    cases.push({ source: new Uint8Array(0), target: new Uint8Array(0) });
    cases.push({ source: new Uint8Array(0), target: Uint8Array.from([0, 255, 10, 64, 58, 59]) });
    cases.push(pair(prng(5), 200_000));
    let copies = 0;
    for (const { source, target } of cases) {
      const delta = createDelta(source, target);
      const out = applyDelta(source, deltaString(Uint8Array.from(delta)));
      assert.deepEqual(out, target);
      assert.deepEqual(out, Uint8Array.from(fossilApply(source, delta)));
      if (/@/.test(bin(delta))) copies++;
    }
    assert.ok(copies > 300, `deltas with copies: ${copies}`);
  });

  it("computes fossil's checksum (the one createDelta writes) for every length modulo 4", () => {
    const rand = prng(7);
    for (let n = 0; n < 64; n++) {
      const target = Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
      // With an empty source the delta is `<n>\n<n>:<the n bytes><checksum>;`.
      const delta = bin(createDelta(new Uint8Array(0), target));
      const body = delta.slice(delta.indexOf('\n') + 1);
      const written = body.slice(body.indexOf(':') + 1 + n, -1);
      assert.equal(base64(checksum(target)), written, `length ${n}`);
    }
  });

  it('fails with delta_checksum when applied to another source of the same size, or when its checksum or size is altered', () => {
    const rand = prng(11);
    const { source, target } = pair(rand, 1000);
    target[500] = (target[500]! + 1) % 256;
    const delta = bin(createDelta(source, target));
    assert.match(delta, /@/);
    assert.deepEqual(applyDelta(source, delta), target);
    const other = source.map((b) => (b + 1) % 256);
    assert.throws(() => applyDelta(other, delta), code('delta_checksum'));
    const sum = `${base64(checksum(target))};`;
    assert.ok(delta.endsWith(sum));
    const altered = `${delta.slice(0, -sum.length)}${base64((checksum(target) + 1) >>> 0)};`;
    assert.throws(() => applyDelta(source, altered), code('delta_checksum'));
    const size = delta.indexOf('\n');
    assert.equal(delta.slice(0, size), base64(target.length));
    assert.throws(() => applyDelta(source, `${base64(target.length + 1)}${delta.slice(size)}`), code('delta_checksum'));
    assert.throws(() => applyDelta(source, `${base64(target.length - 1)}${delta.slice(size)}`), code('delta_checksum'));
  });

  it('fails with delta_malformed on a truncated delta, an unknown operator, a copy past the source, an insert past the delta', () => {
    const { source, target } = pair(prng(3), 500);
    const delta = bin(createDelta(source, target));
    assert.throws(() => applyDelta(source, delta.slice(0, -1)), code('delta_malformed'));
    assert.throws(() => applyDelta(source, delta.slice(0, delta.length >> 1)), code('delta_malformed'));
    assert.throws(() => applyDelta(source, ''), code('delta_malformed'));
    const abc = bytes('abc');
    assert.throws(() => applyDelta(abc, '3\n3!0,0;'), code('delta_malformed'));
    assert.throws(() => applyDelta(abc, '4\n4@0,0;'), code('delta_malformed'));
    assert.throws(() => applyDelta(abc, '4\n4:ab'), code('delta_malformed'));
    // A size no delta of this length could produce is refused before anything is allocated for it.
    assert.throws(() => applyDelta(abc, '3~~~~\n0;'), code('delta_malformed'));
    assert.throws(() => applyDelta(abc, 'zzzzzzzzzz\n0;'), code('delta_malformed'));
    // 'abc' as big-endian words: 0x61626300; 1XObC0 in fossil's base 64.
    assert.equal(checksum(abc), 0x61626300);
    assert.deepEqual(applyDelta(abc, '3\n3@0,1XObC0;'), abc);
    assert.throws(() => applyDelta(bytes('abd'), '3\n3@0,1XObC0;'), code('delta_checksum'));
  });

  it('encodes, decodes and measures UTF-8 as Buffer does, with TextEncoder/TextDecoder and with the code for k6 before v2.2.0', () => {
    const strings = ['', 'plain ascii {"a":1}', 'Müller – Ødegaard ⚽ 🏟️ 日本', '\u0000\u007f\u0080\u07ff\u0800\uffff', '😀x😀', 'a\ud83d', '\udc00b'];
    for (const [name, encode, decode] of [
      ['TextEncoder', utf8Encode, utf8Decode],
      ['portable', portable.encode, portable.decode],
    ] as const) {
      for (const s of strings) {
        const utf8 = Uint8Array.from(Buffer.from(s, 'utf8'));
        assert.deepEqual(encode(s), utf8, `${name} ${JSON.stringify(s)}`);
        assert.equal(utf8Length(s), utf8.length, JSON.stringify(s));
        assert.equal(decode(utf8), Buffer.from(utf8).toString('utf8'), `${name} ${JSON.stringify(s)}`);
      }
      for (const bad of [[0xff], [0xc3], [0xe2, 0x82], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80]]) {
        assert.throws(() => decode(Uint8Array.from(bad)), code('delta_malformed'), `${name} ${JSON.stringify(bad)}`);
      }
    }
  });

  it('deltaReceiver applies a delta only on the id it holds; anything else is delta_wrong_base and never applied', () => {
    // Long enough for copies (fossil matches 16-byte blocks): a delta made from another payload
    // then copies the wrong bytes, which only the checksum can tell.
    const team = (n: string) => ({ name: n, city: 'Münster an der Ruhr', ground: 'Städtisches Stadion am Fluss' });
    const a = { seq: 1, home: team('Müller SC'), away: team('Ødegaard FC'), score: '1–0' };
    const b = { seq: 2, home: team('Müller SC'), away: team('Ødegaard FC'), score: '2–0' };
    const c = { seq: 3, home: team('Müller SD'), away: team('Ødegaard FD'), score: '2–1' };
    const bytes = (v: unknown) => Buffer.from(JSON.stringify(v));
    const d = (from: unknown, to: unknown) => deltaString(Uint8Array.from(createDelta(bytes(from), bytes(to))));
    assert.match(d(a, b), /@/);
    const r = deltaReceiver();
    assert.deepEqual(r.receive(a, { id: '1-0' }), { data: a, delta: false });
    assert.deepEqual(r.receive(d(a, b), { id: '2-0', base: '1-0' }), { data: b, delta: true });
    assert.deepEqual(r.receive(d(b, c), { id: '3-0', base: '2-0' }), { data: c, delta: true });
    // A delta on another base, even one that would apply: never applied, and nothing held after it.
    assert.throws(() => r.receive(d(b, c), { id: '3-0', base: '2-0' }), code('delta_wrong_base'));
    assert.throws(() => r.receive(d(c, a), { id: '4-0', base: '3-0' }), code('delta_wrong_base'));
    assert.deepEqual(r.receive(c, { id: '3-0' }), { data: c, delta: false });
    // A forged delta that names the right base but was made from another payload.
    assert.throws(() => r.receive(d(a, b), { id: '4-0', base: '3-0' }), code('delta_checksum'));
    assert.throws(() => r.receive(d(c, a), { id: '4-0', base: '3-0' }), code('delta_wrong_base'));
    const fresh = deltaReceiver();
    assert.throws(() => fresh.receive(d(a, b), { id: '2-0', base: '1-0' }), code('delta_wrong_base'));
    fresh.receive(a, { id: '1-0' });
    assert.throws(() => fresh.receive({ not: 'a string' }, { id: '2-0', base: '1-0' }), code('delta_malformed'));
  });
});

describe('k6 fossil apply against a gateway (delta room, raw WebSocket through loadtest/lib/socketio.js)', () => {
  const KEY = 'k6-fossil-key-0123456789';
  let gw: Gateway;
  before(async () => {
    gw = await startGateway({ env: { PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'fossil:* delta' } });
  });
  after(async () => {
    await gw?.stop();
  });

  it('rebuilds every published payload exactly, non-ASCII ones included, and measures frames as their byte size', async () => {
    const room = 'fossil:k6';
    const ws = new WebSocket(socketUrl(gw.url));
    const received: { data: unknown; delta: boolean }[] = [];
    const deltas: string[] = [];
    const failures: string[] = [];
    let subscribed: unknown;
    const receiver = deltaReceiver();
    ws.on('message', (raw: Buffer, isBinary: boolean) => {
      assert.equal(isBinary, false);
      const frame = raw.toString('utf8');
      if (isEventFrame(frame)) {
        const f = parseFrame(frame);
        if (f.type !== 'event' || f.name !== 'score') return;
        assert.equal(utf8Length(frame), raw.length);
        if (typeof f.args[0] === 'string') deltas.push(f.args[0]);
        try {
          received.push(receiver.receive(f.args[0], f.args[1] as { id?: string; base?: string }));
        } catch (e) {
          failures.push((e as Error).message);
        }
        return;
      }
      const f = parseFrame(frame);
      if (f.type === 'ping') ws.send(PONG);
      else if (f.type === 'open') ws.send(connectFrame());
      else if (f.type === 'connected') ws.send(eventFrame('subscribe', [{ room, delta: 'fossil' }], 1));
      else if (f.type === 'ack') subscribed = f.args[0];
    });
    try {
      await waitFor('the subscribe ack', () => subscribed);
      assert.equal((subscribed as { ok?: boolean }).ok, true, JSON.stringify(subscribed));
      const payloads = Array.from({ length: 40 }, (_, i) => ({
        seq: i,
        home: { team: 'Fußball Club Ødegaard', goals: i >> 3 },
        away: { team: 'Åland ⚽ 🏟️', goals: i % 3 },
        minute: 10 + i,
        note: i % 5 === 0 ? `tor für ${'ü'.repeat(i)}` : 'no goal',
      }));
      // One at a time, each after the previous arrived: every delta has its base, and the order is the publish order.
      for (const [i, data] of payloads.entries()) {
        const res = await publish(gw.url, { room, event: 'score', data }, KEY);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        await waitFor(`message ${i}`, () => received.length + failures.length > i);
      }
      assert.deepEqual(failures, []);
      assert.deepEqual(
        received.map((r) => r.data),
        payloads,
      );
      // The first is whole, and any message whose delta would not be smaller (the long notes).
      assert.ok(received.filter((r) => r.delta).length >= 30, JSON.stringify(received.map((r) => r.delta)));
      assert.equal(deltas.length, received.filter((r) => r.delta).length);
      // Deltas whose bytes are not ASCII: sent as characters 128-255, two bytes each in the frame.
      assert.ok(deltas.some((d) => /[\u0080-\u00ff]/.test(d)), 'no delta carried a non-ASCII byte');
    } finally {
      ws.close();
    }
  });
});
