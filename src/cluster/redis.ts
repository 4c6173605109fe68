import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Config } from '../config/schema.js';
import { throttle, type Logger } from '../observability/logger.js';
import { createSentinelClient, followFailovers, serverOf, type SentinelTarget } from './sentinel.js';

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

/** A standalone Redis or a Redis Cluster: both speak the same commands through ioredis. */
export type RedisClient = Redis | Cluster;

/** Where Redis is: one server, the seed nodes of a cluster, or the master Sentinels monitor. */
export type RedisTarget = { url: string } | { clusterNodes: readonly string[] } | SentinelTarget;

/** The Redis the configuration names; undefined for a single node without one. */
export function redisTargetOf(
  config: Pick<Config, 'redisUrl' | 'redisClusterNodes' | 'redisSentinels' | 'redisSentinelName' | 'redisPassword' | 'redisSentinelPassword'>,
): RedisTarget | undefined {
  if (config.redisClusterNodes.length > 0) return { clusterNodes: config.redisClusterNodes };
  if (config.redisSentinels.length > 0 && config.redisSentinelName !== undefined) {
    return { sentinels: config.redisSentinels, name: config.redisSentinelName, password: config.redisPassword, sentinelPassword: config.redisSentinelPassword };
  }
  return config.redisUrl ? { url: config.redisUrl } : undefined;
}

/** Attaches the listeners every herald Redis client needs: errors logged (throttled), never thrown. */
export function watchClient(client: RedisClient, name: string, logger: Logger): void {
  const errorLog = throttle(ERROR_LOG_INTERVAL_MS);
  let wasReady = false;
  client.on('error', (err: Error) => {
    if (errorLog.due()) logger.warn({ client: name, err: err.message }, 'redis connection error');
  });
  client.on('ready', () => {
    wasReady = true;
    errorLog.reset();
    // Which server: behind Sentinel it changes with every failover.
    logger.info({ client: name, server: client instanceof Redis ? serverOf(client) : undefined }, 'redis ready');
  });
  client.on('close', () => {
    if (wasReady) logger.warn({ client: name }, 'redis connection closed; reconnecting');
    wasReady = false;
  });
}

export interface RedisPair {
  readonly pub: RedisClient;
  readonly sub: RedisClient;
  readonly cluster: boolean;
  /** True while both connections are usable. */
  isReady(): boolean;
  /** Quits both clients, forcing a disconnect after `timeoutMs`. Idempotent. */
  close(timeoutMs: number): Promise<void>;
}

export function createRedisPair(target: RedisTarget, logger: Logger): RedisPair {
  const [pub, sub] =
    'url' in target
      ? [new Redis(target.url, PUB_OPTIONS), new Redis(target.url, SUB_OPTIONS)]
      : 'clusterNodes' in target
        ? [createCluster(target.clusterNodes, PUB_OPTIONS, false), createCluster(target.clusterNodes, SUB_OPTIONS, true)]
        : [createSentinelClient(target, PUB_OPTIONS), createSentinelClient(target, SUB_OPTIONS)];
  watchClient(pub, 'pub', logger);
  watchClient(sub, 'sub', logger);
  const failovers =
    'sentinels' in target
      ? followFailovers(target, [pub as Redis, sub as Redis], COMMON, (client, name) => watchClient(client, name, logger), logger)
      : undefined;
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
    cluster: 'clusterNodes' in target,
    isReady: () => pub.status === 'ready' && sub.status === 'ready' && subscribed,
    close(timeoutMs) {
      failovers?.close();
      closing ??= Promise.all([quitBounded(pub, timeoutMs), quitBounded(sub, timeoutMs)]).then(() => undefined);
      return closing;
    },
  };
}

/**
 * An ioredis Cluster from seed URLs. Credentials and TLS come from the URLs (`rediss://` for
 * Azure Cache for Redis); `dnsLookup` keeps the host names TLS certificates are issued for;
 * the subscriber uses one connection per shard for SSUBSCRIBE.
 */
function createCluster(urls: readonly string[], options: RedisOptions, subscriber: boolean): Cluster {
  const first = new URL(urls[0]!);
  const clusterOptions: ClusterOptions = {
    redisOptions: {
      ...options,
      username: first.username ? decodeURIComponent(first.username) : undefined,
      password: first.password ? decodeURIComponent(first.password) : undefined,
      tls: first.protocol === 'rediss:' ? { servername: first.hostname } : undefined,
    },
    enableOfflineQueue: options.enableOfflineQueue ?? true,
    clusterRetryStrategy: (attempt) => Math.min(attempt * 100, RECONNECT_MAX_DELAY_MS),
    dnsLookup: (address, callback) => callback(null, address),
    slotsRefreshTimeout: 2000,
    shardedSubscribers: subscriber,
  };
  return new Cluster(
    urls.map((u) => {
      const url = new URL(u);
      // A URL writes an IPv6 host in brackets; a socket connects to it without them.
      return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port) };
    }),
    clusterOptions,
  );
}

async function quitBounded(client: RedisClient, timeoutMs: number): Promise<void> {
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
