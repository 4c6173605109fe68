import { createAdapter } from '@socket.io/redis-adapter';
import type { Server } from 'socket.io';
import { throttle, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { guardFireAndForget } from './guard.js';
import { createRedisPair, ERROR_LOG_INTERVAL_MS, type RedisPair } from './redis.js';

export type BusKind = 'memory' | 'redis';

/**
 * How replicas share rooms and broadcasts. The bus never sees clients: it only installs a
 * Socket.IO adapter on the server it is given.
 *
 * Guarantees: at-most-once between replicas (Redis pub/sub). Local delivery never depends on the
 * bus: while Redis is down, a publish still reaches this replica's subscribers, and the lost
 * cross-replica copy is counted in `Metrics.busPublishFailed`.
 */
export interface Bus {
  readonly kind: BusKind;
  /** The Redis connections, for other Redis-backed parts (history); undefined for `memory`. */
  readonly redis: RedisPair | undefined;
  /** Installs the adapter on `io`. Call once, before clients connect. */
  install(io: Server): void;
  /** False while a configured Redis is unreachable; readiness reports it. */
  isReady(): boolean;
  /** Releases connections, bounded by `timeoutMs`. Idempotent. */
  close(timeoutMs: number): Promise<void>;
}

export interface BusOptions {
  redisUrl: string | undefined;
  keyPrefix: string;
  logger: Logger;
  metrics: Metrics;
}

export function createBus(opts: BusOptions): Bus {
  if (opts.redisUrl === undefined) {
    return { kind: 'memory', redis: undefined, install: () => {}, isReady: () => true, close: async () => {} };
  }
  const { logger, metrics } = opts;
  const pair = createRedisPair(opts.redisUrl, logger);
  const failureLog = throttle(ERROR_LOG_INTERVAL_MS);
  const onFailure = (command: string, err: Error) => {
    if (command === 'publish') metrics.busPublishFailed();
    if (failureLog.due()) logger.warn({ command, err: err.message }, 'redis command failed; local delivery continues');
  };
  return {
    kind: 'redis',
    redis: pair,
    install(io) {
      io.adapter(
        createAdapter(guardFireAndForget(pair.pub, onFailure), guardFireAndForget(pair.sub, onFailure), {
          key: opts.keyPrefix,
        }),
      );
    },
    isReady: () => pair.isReady(),
    close: (timeoutMs) => pair.close(timeoutMs),
  };
}
