import { once } from 'node:events';
import type { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';

/** Default upper bound for any wait in the tests; a condition not met by then fails the test. */
export const WAIT_MS = 10_000;

/**
 * Resolves when `check` returns a truthy value (which it returns), re-evaluating every 25 ms;
 * rejects with `what` after `timeoutMs`. For state that has no event to wait on (HTTP endpoints).
 */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = WAIT_MS): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    }
    await delay(25);
  }
}

/** Anything `events.once` accepts: Node emitters and socket.io-client's emitter alike. */
export interface Emitterish {
  once(event: string, listener: (...args: any[]) => void): unknown;
  removeListener(event: string, listener: (...args: any[]) => void): unknown;
}

/** `events.once` with a deadline. */
export async function onceWithin<T extends unknown[] = unknown[]>(
  emitter: Emitterish,
  event: string,
  what: string,
  timeoutMs = WAIT_MS,
): Promise<T> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    return (await once(emitter as EventEmitter, event, { signal })) as T;
  } catch (err) {
    if (signal.aborted) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    throw err;
  }
}
