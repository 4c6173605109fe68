import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyDelta as reference, createDelta } from 'fossil-delta';
import { applyDelta } from '../client/src/fossil.js';
import { deltaString } from '../src/history/delta.js';

// The delta format herald sends (src/history/delta.ts) against the client module's apply
// (client/src/fossil.ts) and fossil-delta's own, on JSON with multi-byte characters (a delta can
// cut one in two) and on random bytes.

const utf8 = new TextEncoder();

test('the client module applies what herald creates, byte for byte, as fossil-delta does', () => {
  for (let i = 0; i < 2000; i++) {
    const base = { home: i % 7, away: (i * 3) % 5, name: `Ünïcødé ✓ ${'x'.repeat(i % 300)}`, minute: i, list: Array.from({ length: i % 20 }, (_, k) => k * i) };
    const next = { ...base, home: base.home + (i % 2), minute: i + 1, name: base.name + (i % 3 ? '€' : 'é') };
    const a = utf8.encode(JSON.stringify(base));
    const b = utf8.encode(JSON.stringify(next));
    const d = createDelta(a, b);
    assert.deepEqual(applyDelta(a, deltaString(d)), b, `json ${i}`);
    assert.deepEqual(reference(a, d), b);
    const r1 = Uint8Array.from({ length: i % 500 }, () => (Math.random() * 256) | 0);
    const r2 = Uint8Array.from({ length: (i * 7) % 500 }, (_, k) => (k < r1.length && k % 5 ? r1[k]! : (Math.random() * 256) | 0));
    assert.deepEqual(applyDelta(r1, deltaString(createDelta(r1, r2))), r2, `random ${i}`);
  }
});

test('a delta survives JSON as herald sends it (one character per byte)', () => {
  const a = utf8.encode(JSON.stringify({ s: '日本語のテキスト', n: 1 }));
  const b = utf8.encode(JSON.stringify({ s: '日本語のテキストです', n: 2 }));
  const wire = JSON.parse(JSON.stringify(deltaString(createDelta(a, b)))) as string;
  assert.deepEqual(applyDelta(a, wire), b);
});

test('a delta applied to the wrong source, or cut short, throws instead of returning bytes', () => {
  const a = utf8.encode(JSON.stringify({ home: 1, away: 0, clock: '12:00', team: 'abcdefghijklmnopqrstuvwxyz' }));
  const b = utf8.encode(JSON.stringify({ home: 2, away: 0, clock: '12:01', team: 'abcdefghijklmnopqrstuvwxyz' }));
  const other = utf8.encode(JSON.stringify({ home: 9, away: 9, clock: '99:99', team: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ' }));
  const d = deltaString(createDelta(a, b));
  assert.throws(() => applyDelta(other, d), /bad delta/);
  assert.throws(() => applyDelta(a, d.slice(0, -3)), /bad delta/);
  assert.throws(() => applyDelta(a, 'garbage'), /bad delta/);
});
