import { Redis, type RedisOptions } from 'ioredis';
import { throttle, type Logger } from '../observability/logger.js';

/** Reconnect delay grows with attempts and is capped, so a long outage costs one try every 2 s. */
const RECONNECT_MAX_DELAY_MS = 2000;
/** A repeated Redis error is logged at most this often per client. */
export const ERROR_LOG_INTERVAL_MS = 10_000;

const COMMON: RedisOptions = {
  retryStrategy: (attempt) => Math.min(attempt * 100, RECONNECT_MAX_DELAY_MS),
  connectTimeout: 5000,
};

/**
 * Publisher: no offline queue, so a publish during an outage fails at once (and is counted)
 * instead of piling up in memory and arriving minutes late.
 * Subscriber: queue subscriptions until connected and never give up on them; ioredis
 * resubscribes by itself after a reconnect.
 */
const PUB_OPTIONS: RedisOptions = { ...COMMON, enableOfflineQueue: false, maxRetriesPerRequest: 1 };
const SUB_OPTIONS: RedisOptions = { ...COMMON, maxRetriesPerRequest: null };

/** Attaches the listeners every herald Redis client needs: errors logged (throttled), never thrown. */
export function watchClient(client: Redis, name: string, logger: Logger): void {
  const errorLog = throttle(ERROR_LOG_INTERVAL_MS);
  let wasReady = false;
  client.on('error', (err: Error) => {
    if (errorLog.due()) logger.warn({ client: name, err: err.message }, 'redis connection error');
  });
  client.on('ready', () => {
    wasReady = true;
    errorLog.reset();
    logger.info({ client: name }, 'redis ready');
  });
  client.on('close', () => {
    if (wasReady) logger.warn({ client: name }, 'redis connection closed; reconnecting');
    wasReady = false;
  });
}

export interface RedisPair {
  readonly pub: Redis;
  readonly sub: Redis;
  /** True while both connections are usable. */
  isReady(): boolean;
  /** Quits both clients, forcing a disconnect after `timeoutMs`. Idempotent. */
  close(timeoutMs: number): Promise<void>;
}

export function createRedisPair(url: string, logger: Logger): RedisPair {
  const pub = new Redis(url, PUB_OPTIONS);
  const sub = new Redis(url, SUB_OPTIONS);
  watchClient(pub, 'pub', logger);
  watchClient(sub, 'sub', logger);
  // ioredis reports `ready` before its automatic resubscribe has been answered. A PING sent after
  // it is answered after the SUBSCRIBEs, so once it returns this replica hears the bus again.
  let subscribed = false;
  sub.on('ready', () => {
    sub.ping().then(
      () => {
        subscribed = sub.status === 'ready';
      },
      () => {},
    );
  });
  sub.on('close', () => {
    subscribed = false;
  });
  let closing: Promise<void> | undefined;
  return {
    pub,
    sub,
    isReady: () => pub.status === 'ready' && sub.status === 'ready' && subscribed,
    close(timeoutMs) {
      closing ??= Promise.all([quitBounded(pub, timeoutMs), quitBounded(sub, timeoutMs)]).then(() => undefined);
      return closing;
    },
  };
}

async function quitBounded(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      client.disconnect();
      resolve();
    }, timeoutMs);
  });
  await Promise.race([client.quit().then(() => undefined, () => client.disconnect()), deadline]);
  clearTimeout(timer);
}
