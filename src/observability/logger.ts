import { format } from 'node:util';
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

/**
 * Sends what dependencies print with `console` through `logger`, one JSON line each with
 * `source: "console"`, instead of plain text beside the JSON log. ioredis does: `console.warn`
 * when a password is sent to a Redis that needs none, when it skips its ready check (an ACL
 * without INFO), or `console.error` for an error event nobody listens to. For the gateway
 * process only (src/main.ts); the herald command's own output is not a log.
 */
export function routeConsole(logger: Logger): void {
  const to = (level: 'debug' | 'info' | 'warn' | 'error') => (...args: unknown[]) => logger[level]({ source: 'console' }, format(...args));
  console.debug = to('debug');
  console.log = to('info');
  console.info = to('info');
  console.warn = to('warn');
  console.error = to('error');
}
