/*! Fossil delta apply, after D. Richard Hipp's (Fossil SCM) and Dmitry Chestnykh's fossil-delta (BSD). */

/** The digits of fossil's integers, base 64. */
const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~';

/**
 * Applies a fossil delta to `source`. `delta` is the delta's bytes as herald sends them: one
 * character (code 0–255) per byte. Throws on anything malformed, and when the result's checksum
 * is not the one the delta names (a wrong source).
 */
export function applyDelta(source: Uint8Array, delta: string): Uint8Array {
  let pos = 0;
  const int = (): number => {
    let v = 0;
    let d: number;
    while (pos < delta.length && (d = DIGITS.indexOf(delta[pos]!)) >= 0) {
      v = v * 64 + d;
      pos++;
    }
    return v;
  };
  const size = int();
  if (delta[pos++] !== '\n') throw new Error('bad delta: size');
  const out = new Uint8Array(size);
  let n = 0;
  while (pos < delta.length) {
    const count = int();
    const op = delta[pos++];
    if (op === '@') {
      const from = int();
      if (delta[pos++] !== ',') throw new Error('bad delta: copy');
      if (n + count > size || from + count > source.length) throw new Error('bad delta: copy range');
      out.set(source.subarray(from, from + count), n);
      n += count;
    } else if (op === ':') {
      if (n + count > size || pos + count > delta.length) throw new Error('bad delta: insert range');
      for (let i = 0; i < count; i++) out[n++] = delta.charCodeAt(pos++) & 0xff;
    } else if (op === ';') {
      if (n !== size) throw new Error('bad delta: size mismatch');
      if (count !== checksum(out)) throw new Error('bad delta: checksum');
      return out;
    } else throw new Error('bad delta: operator');
  }
  throw new Error('bad delta: unterminated');
}

/** Fossil's checksum: the bytes summed as big-endian 32-bit words, the tail padded with zeros. */
function checksum(a: Uint8Array): number {
  let sum = 0;
  const whole = a.length & ~3;
  for (let i = 0; i < whole; i += 4) sum = (sum + ((a[i]! << 24) | (a[i + 1]! << 16) | (a[i + 2]! << 8) | a[i + 3]!)) | 0;
  for (let i = whole, shift = 24; i < a.length; i++, shift -= 8) sum = (sum + (a[i]! << shift)) | 0;
  return sum >>> 0;
}
