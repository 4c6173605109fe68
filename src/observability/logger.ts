import { pino, type Logger } from 'pino';
import type { LogLevel } from '../config/schema.js';

export type { Logger };

/** JSON lines on stdout; every line carries the replica id so a cluster's logs can be merged. */
export function createLogger(level: LogLevel, replicaId: string): Logger {
  return pino({ level, base: { replica: replicaId }, timestamp: pino.stdTimeFunctions.isoTime });
}
