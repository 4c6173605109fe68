import { HeraldError } from '../errors.js';

/** Deepest nesting of objects/arrays accepted in published `data`. */
export const MAX_JSON_DEPTH = 32;

/**
 * Throws `bad_request` when `value` nests deeper than `max`, or holds a number JSON cannot carry
 * (`1e999` parses as Infinity, which every subscriber would receive as `null`). Iterative, so
 * hostile input cannot exhaust the stack, and it stops at the first fault.
 */
export function assertDepth(value: unknown, max = MAX_JSON_DEPTH): void {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v === 'number' && !Number.isFinite(v)) {
      throw new HeraldError('bad_request', '"data" holds a number too large for JSON (it would arrive as null); send it as a string.');
    }
    if (v === null || typeof v !== 'object' || isBinary(v)) continue;
    if (depth >= max) throw new HeraldError('bad_request', `"data" nests deeper than ${max} levels.`);
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
}

/** Buffers, typed arrays and ArrayBuffers: Socket.IO sends them as binary attachments. */
function isBinary(v: object): boolean {
  return ArrayBuffer.isView(v) || v instanceof ArrayBuffer;
}

/** True when `value` holds a binary value anywhere (a client publish with attachments). */
export function containsBinary(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    if (isBinary(v)) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push(child);
  }
  return false;
}
