// Fossil deltas as herald sends them (docs/reference/deltas.md), applied in plain JavaScript so the
// k6 scripts (goja: no npm, no TextEncoder, no Buffer) and Node run the same code. Self-contained:
// ported from Fossil SCM's delta_apply() (src/delta.c, D. Richard Hipp, BSD-2-Clause), the
// algorithm fossil-delta (npm, Dmitry Chestnykh) and Centrifugo's clients implement.
//
// Bytes are "binary strings" here: one character per byte, code points 0–255. That is how herald
// puts a delta in `data`, and lets a copy be a `substring` without typed arrays.
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
 * Applies the fossil delta `delta` to `source`, both binary strings, and returns the target as a
 * binary string. Throws a `deltaError` on a malformed delta and when the target's checksum is not
 * the one the delta ends with.
 */
export function applyDelta(source, delta) {
  let pos = 0;
  const getInt = () => {
    let v = 0;
    const start = pos;
    let c;
    while (pos < delta.length && (c = delta.charCodeAt(pos)) < 128 && VALUE[c] >= 0) {
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
  const parts = [];
  let total = 0;
  while (pos < delta.length) {
    const count = getInt();
    const op = delta.charAt(pos);
    pos++;
    if (op === '@') {
      const offset = getInt();
      if (delta.charAt(pos) !== ',') throw deltaError('delta_malformed', "copy command not terminated by ','");
      pos++;
      total += count;
      if (total > limit) throw deltaError('delta_checksum', 'copy exceeds output size');
      if (offset + count > source.length) throw deltaError('delta_malformed', 'copy extends past end of source');
      parts.push(source.substring(offset, offset + count));
    } else if (op === ':') {
      total += count;
      if (total > limit) throw deltaError('delta_checksum', 'insert gives an output larger than predicted');
      if (pos + count > delta.length) throw deltaError('delta_malformed', 'insert count exceeds size of delta');
      parts.push(delta.substring(pos, pos + count));
      pos += count;
    } else if (op === ';') {
      const out = parts.join('');
      if (total !== limit) throw deltaError('delta_checksum', 'generated size does not match predicted size');
      if (count !== checksum(out)) throw deltaError('delta_checksum', 'bad checksum');
      return out;
    } else throw deltaError('delta_malformed', `unknown delta operator ${JSON.stringify(op)}`);
  }
  throw deltaError('delta_malformed', 'unterminated delta');
}

/**
 * Fossil's checksum of a binary string: its bytes summed as big-endian 32-bit words, modulo 2^32,
 * the last partial word padded with zeros.
 */
export function checksum(bytes) {
  let sum = 0;
  const n = bytes.length;
  const whole = n - (n % 4);
  let i = 0;
  for (; i < whole; i += 4) {
    sum = (sum + ((bytes.charCodeAt(i) << 24) | (bytes.charCodeAt(i + 1) << 16) | (bytes.charCodeAt(i + 2) << 8) | bytes.charCodeAt(i + 3))) | 0;
  }
  for (let shift = 24; i < n; i++, shift -= 8) sum = (sum + (bytes.charCodeAt(i) << shift)) | 0;
  return sum >>> 0;
}

/** True when every character of `s` is ASCII (then its UTF-8 bytes are its characters). */
function ascii(s) {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 127) return false;
  return true;
}

/** The UTF-8 bytes of a string, as a binary string. */
export function utf8Encode(s) {
  if (ascii(s)) return s;
  const out = [];
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd; // a lone surrogate, as TextEncoder and Buffer write it
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return fromCodes(out);
}

/** The string a binary string of UTF-8 bytes encodes; throws `delta_malformed` on invalid UTF-8. */
export function utf8Decode(bytes) {
  if (ascii(bytes)) return bytes;
  const out = [];
  const n = bytes.length;
  const cont = (i) => {
    const b = i < n ? bytes.charCodeAt(i) : -1;
    if ((b & 0xc0) !== 0x80) throw deltaError('delta_malformed', 'result is not UTF-8');
    return b & 63;
  };
  for (let i = 0; i < n; ) {
    const b = bytes.charCodeAt(i);
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
    if (c >= 0x10000) out.push(0xd800 + ((c - 0x10000) >> 10), 0xdc00 + ((c - 0x10000) & 1023));
    else out.push(c);
  }
  return fromCodes(out);
}

/** The number of bytes `s` takes as UTF-8: a WebSocket text frame's payload size. */
export function utf8Length(s) {
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

function fromCodes(codes) {
  let s = '';
  for (let i = 0; i < codes.length; i += 4096) s += String.fromCharCode.apply(null, codes.slice(i, i + 4096));
  return s;
}

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
