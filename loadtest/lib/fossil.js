// Fossil deltas as herald sends them (docs/reference/deltas.md), applied in plain JavaScript so the
// k6 scripts (k6's own JavaScript runtime: no npm, no Buffer) and Node run the same code. Self-contained:
// ported from Fossil SCM's delta_apply() (src/delta.c, D. Richard Hipp, BSD-2-Clause), the
// algorithm fossil-delta (npm, Dmitry Chestnykh) and Centrifugo's clients implement.
//
// Bytes are a Uint8Array (source and result); the delta is a string of one character (code
// 0–255) per byte, which is how herald puts it in `data`. Copies are `Uint8Array.set`, native in
// k6 as in Node; k6's JavaScript runs interpreted, so per-byte loops are kept to the inserts, the
// checksum (one 32-bit read per 4 bytes) and, where k6 has no TextEncoder/TextDecoder (before
// v2.2.0), UTF-8.
//
// A delta is `<target size>\n` and then commands, every integer in fossil's base 64:
//   <count>@<offset>,   copy count bytes from the source at offset
//   <count>:<bytes>     insert the count bytes that follow
//   <checksum>;         end: the target's checksum (fossil's checksum(), below)

/** The digits of fossil's integers, base 64. */
const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~';
const VALUE = (() => {
  const v = [];
  for (let i = 0; i < 128; i++) v.push(-1);
  for (let i = 0; i < DIGITS.length; i++) v[DIGITS.charCodeAt(i)] = i;
  return v;
})();
/** Larger integers are not a delta herald could send (PUBLISH_MAX_BYTES is far below). */
const MAX_INT = 0xffffffff;

/**
 * An error with a `code`: `delta_checksum` (the result is not the target the delta was made for:
 * applied to another source, or corrupted; a wrong target size counts here too) or
 * `delta_malformed` (not a fossil delta: bad syntax, a copy outside the source, an insert past
 * the delta's end). `delta_wrong_base` comes from `deltaReceiver`.
 */
export function deltaError(code, message) {
  const e = new Error(`${code}: ${message}`);
  e.code = code;
  return e;
}

/**
 * Applies the fossil delta `delta` (a string, one character per byte) to `source` (a Uint8Array)
 * and returns the target, a Uint8Array. Throws a `deltaError` on a malformed delta and when the
 * target's checksum is not the one the delta ends with.
 */
export function applyDelta(source, delta) {
  let pos = 0;
  const length = delta.length;
  const getInt = () => {
    let v = 0;
    const start = pos;
    let c;
    while (pos < length && (c = delta.charCodeAt(pos)) < 128 && VALUE[c] >= 0) {
      v = v * 64 + VALUE[c];
      if (v > MAX_INT) throw deltaError('delta_malformed', 'integer too large');
      pos++;
    }
    if (pos === start) throw deltaError('delta_malformed', `integer expected at ${start}`);
    return v;
  };
  const limit = getInt();
  if (delta.charAt(pos) !== '\n') throw deltaError('delta_malformed', "size integer not terminated by '\\n'");
  pos++;
  if (limit > length * MAX_GROWTH + source.length) throw deltaError('delta_malformed', 'target size out of proportion');
  // Padded to whole 32-bit words with zeros, which is what fossil's checksum adds for a partial one.
  const buffer = new ArrayBuffer((limit + 3) & ~3);
  const out = new Uint8Array(buffer, 0, limit);
  let total = 0;
  while (pos < length) {
    const count = getInt();
    const op = delta.charAt(pos);
    pos++;
    if (op === '@') {
      const offset = getInt();
      if (delta.charAt(pos) !== ',') throw deltaError('delta_malformed', "copy command not terminated by ','");
      pos++;
      if (total + count > limit) throw deltaError('delta_checksum', 'copy exceeds output size');
      if (offset + count > source.length) throw deltaError('delta_malformed', 'copy extends past end of source');
      out.set(source.subarray(offset, offset + count), total);
      total += count;
    } else if (op === ':') {
      if (total + count > limit) throw deltaError('delta_checksum', 'insert gives an output larger than predicted');
      if (pos + count > length) throw deltaError('delta_malformed', 'insert count exceeds size of delta');
      for (let i = 0; i < count; i++) out[total + i] = delta.charCodeAt(pos + i);
      total += count;
      pos += count;
    } else if (op === ';') {
      if (total !== limit) throw deltaError('delta_checksum', 'generated size does not match predicted size');
      if (count !== paddedChecksum(buffer)) throw deltaError('delta_checksum', 'bad checksum');
      return out;
    } else throw deltaError('delta_malformed', `unknown delta operator ${JSON.stringify(op)}`);
  }
  throw deltaError('delta_malformed', 'unterminated delta');
}

/**
 * A delta's target is at most this many times its size plus its source's: a copy command
 * (`<count>@<offset>,`) of 7 bytes can copy the whole source, so real deltas stay far below; a
 * forged size is refused before anything is allocated for it.
 */
const MAX_GROWTH = 64;

/**
 * Fossil's checksum of a byte array: its bytes summed as big-endian 32-bit words, modulo 2^32, the
 * last partial word padded with zeros.
 */
export function checksum(bytes) {
  const buffer = new ArrayBuffer((bytes.length + 3) & ~3);
  new Uint8Array(buffer).set(bytes);
  return paddedChecksum(buffer);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * The checksum of an ArrayBuffer whose length is a multiple of 4. Reads one 32-bit word per 4 bytes
 * and sums its bytes per lane (position mod 4), two lanes per 32-bit accumulator 16 bits apart,
 * folded every 256 words before a lane can carry into the next; then
 * (lane0 << 24) + (lane1 << 16) + (lane2 << 8) + lane3, modulo 2^32, which is the sum of the
 * big-endian words.
 */
function paddedChecksum(buffer) {
  if (!LITTLE_ENDIAN) {
    const b = new Uint8Array(buffer);
    const n = b.length;
    let sum = 0;
    for (let i = 0; i < n; i += 4) sum = (sum + ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3])) | 0;
    return sum >>> 0;
  }
  const words = new Uint32Array(buffer);
  const n = words.length; // read once: a typed array's length costs k6's interpreter a lookup per read
  // On a little-endian machine a word's low byte is the byte at position 0 mod 4.
  let lane0 = 0;
  let lane1 = 0;
  let lane2 = 0;
  let lane3 = 0;
  for (let i = 0; i < n; ) {
    const end = Math.min(n, i + 256);
    let even = 0; // lanes 0 (bits 0-15) and 2 (bits 16-31)
    let odd = 0; // lanes 1 and 3
    for (; i < end; i++) {
      const w = words[i];
      even += w & 0x00ff00ff;
      odd += (w >>> 8) & 0x00ff00ff;
    }
    // Only the low 8, 16, 24 and 32 bits of the lanes reach the result.
    lane0 = (lane0 + (even & 0xffff)) % 0x100;
    lane2 = (lane2 + (even >>> 16)) % 0x1000000;
    lane1 = (lane1 + (odd & 0xffff)) % 0x10000;
    lane3 = (lane3 + (odd >>> 16)) % 0x100000000;
  }
  return (lane0 * 0x1000000 + lane1 * 0x10000 + lane2 * 0x100 + lane3) % 0x100000000;
}

const NON_ASCII = /[^\x00-\x7f]/;
const encoder = typeof TextEncoder === 'function' ? new TextEncoder() : undefined;
const decoder = typeof TextDecoder === 'function' ? new TextDecoder('utf-8', { fatal: true }) : undefined;

/** The UTF-8 bytes of a string, a Uint8Array (TextEncoder where the runtime has it). */
export function utf8Encode(s) {
  return encoder ? encoder.encode(s) : encodeUtf8(s);
}

/** The string UTF-8 bytes (a Uint8Array) encode; throws `delta_malformed` on invalid UTF-8. */
export function utf8Decode(bytes) {
  if (!decoder) return decodeUtf8(bytes);
  try {
    return decoder.decode(bytes);
  } catch (e) {
    throw deltaError('delta_malformed', 'result is not UTF-8');
  }
}

function encodeUtf8(s) {
  const out = new Uint8Array(utf8Length(s));
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      c = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(i + 1) - 0xdc00);
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd; // a lone surrogate, as TextEncoder writes it
    if (c < 0x80) out[n++] = c;
    else if (c < 0x800) (out[n++] = 0xc0 | (c >> 6)), (out[n++] = 0x80 | (c & 63));
    else if (c < 0x10000) (out[n++] = 0xe0 | (c >> 12)), (out[n++] = 0x80 | ((c >> 6) & 63)), (out[n++] = 0x80 | (c & 63));
    else (out[n++] = 0xf0 | (c >> 18)), (out[n++] = 0x80 | ((c >> 12) & 63)), (out[n++] = 0x80 | ((c >> 6) & 63)), (out[n++] = 0x80 | (c & 63));
  }
  return out;
}

function decodeUtf8(bytes) {
  const codes = [];
  const n = bytes.length;
  const cont = (i) => {
    const b = i < n ? bytes[i] : -1;
    if ((b & 0xc0) !== 0x80) throw deltaError('delta_malformed', 'result is not UTF-8');
    return b & 63;
  };
  for (let i = 0; i < n; ) {
    const b = bytes[i];
    let c;
    if (b < 0x80) (c = b), (i += 1);
    else if (b >= 0xc2 && b < 0xe0) (c = ((b & 31) << 6) | cont(i + 1)), (i += 2);
    else if (b >= 0xe0 && b < 0xf0) {
      c = ((b & 15) << 12) | (cont(i + 1) << 6) | cont(i + 2);
      if (c < 0x800 || (c >= 0xd800 && c <= 0xdfff)) throw deltaError('delta_malformed', 'result is not UTF-8');
      i += 3;
    } else if (b >= 0xf0 && b < 0xf5) {
      c = ((b & 7) << 18) | (cont(i + 1) << 12) | (cont(i + 2) << 6) | cont(i + 3);
      if (c < 0x10000 || c > 0x10ffff) throw deltaError('delta_malformed', 'result is not UTF-8');
      i += 4;
    } else throw deltaError('delta_malformed', 'result is not UTF-8');
    if (c >= 0x10000) codes.push(0xd800 + ((c - 0x10000) >> 10), 0xdc00 + ((c - 0x10000) & 1023));
    else codes.push(c);
  }
  let s = '';
  for (let i = 0; i < codes.length; i += 4096) s += String.fromCharCode.apply(null, codes.slice(i, i + 4096));
  return s;
}

/** The number of bytes `s` takes as UTF-8: a WebSocket text frame's payload size. */
export function utf8Length(s) {
  if (!NON_ASCII.test(s)) return s.length;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4; // a surrogate pair: one code point past U+FFFF
      i++;
    } else n += 3; // a lone surrogate counts as U+FFFD, as TextEncoder writes it
  }
  return n;
}

/**
 * The UTF-8 implementations without TextEncoder/TextDecoder (k6 before v2.2.0), exported for the
 * tests, which run where both exist.
 */
export const portable = { encode: encodeUtf8, decode: decodeUtf8 };

/**
 * One subscriber's delta state in one room, as the client module keeps it: the `meta.id` and the
 * bytes (UTF-8 of `JSON.stringify(data)`) of the last message it holds. `receive(data, meta)`
 * takes an event's data and meta as they arrive and returns `{data, delta}`: the whole payload,
 * and whether it came as a delta. A delta (`meta.base` set) is applied only when `meta.base` is
 * the id held; otherwise it throws `delta_wrong_base` without applying it. A delta that fails
 * (`delta_checksum`, `delta_malformed`) throws too. After any throw nothing is held, so every
 * delta until the next whole message also throws `delta_wrong_base`.
 */
export function deltaReceiver() {
  let lastId;
  let lastBytes;
  return {
    receive(data, meta) {
      const base = meta ? meta.base : undefined;
      const id = meta ? meta.id : undefined;
      if (base === undefined) {
        lastBytes = utf8Encode(JSON.stringify(data));
        lastId = id;
        return { data: data, delta: false };
      }
      const held = lastBytes;
      const heldId = lastId;
      lastBytes = undefined;
      lastId = undefined;
      if (held === undefined || heldId === undefined || base !== heldId) {
        throw deltaError('delta_wrong_base', `delta on ${base}, holding ${heldId === undefined ? 'nothing' : heldId}`);
      }
      if (typeof data !== 'string') throw deltaError('delta_malformed', 'delta data is not a string');
      const bytes = applyDelta(held, data);
      let payload;
      try {
        payload = JSON.parse(utf8Decode(bytes));
      } catch (e) {
        throw e.code ? e : deltaError('delta_malformed', `result is not JSON: ${e.message}`);
      }
      lastBytes = bytes;
      lastId = id;
      return { data: payload, delta: true };
    },
  };
}
