import { pino, type Logger } from 'pino';
import type { LogLevel } from '../config/schema.js';

export type { Logger };

/** JSON lines on stdout; every line carries the replica id so a cluster's logs can be merged. */
export function createLogger(level: LogLevel, replicaId: string): Logger {
  return pino({ level, base: { replica: replicaId }, timestamp: pino.stdTimeFunctions.isoTime });
}

/**
 * For errors that repeat while a dependency is down (every reconnect attempt): returns a check
 * that is true at most once per `intervalMs`, so the first occurrence is logged and the rest are not.
 */
export function throttle(intervalMs: number): { due(): boolean; reset(): void } {
  let last = -Infinity;
  return {
    due() {
      const now = Date.now();
      if (now - last < intervalMs) return false;
      last = now;
      return true;
    },
    reset() {
      last = -Infinity;
    },
  };
}
