import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Config } from '../config/schema.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { linkOptions, pingLinks, type LinkTiming } from './link.js';
import { reasonOf, type TargetName } from './diagnose.js';
import { trackReachability, type Reachability } from './reachability.js';
import { createSentinelClient, followFailovers, serverOf, type SentinelTarget } from './sentinel.js';

/** Reconnect delay grows with attempts and is capped, so a long outage costs one try every 2 s. */
const RECONNECT_MAX_DELAY_MS = 2000;
/** A repeated Redis error is logged at most this often per client. */
export const ERROR_LOG_INTERVAL_MS = 10_000;

/** Every herald client: the reconnect back-off and the link checks (src/cluster/link.ts). */
export function commonOptions(timing: LinkTiming): RedisOptions {
  return { retryStrategy: (attempt) => Math.min(attempt * 100, RECONNECT_MAX_DELAY_MS), ...linkOptions(timing) };
}

/**
 * Publisher: no offline queue, so a publish during an outage fails at once (and is counted)
 * instead of piling up in memory and arriving minutes late; and a command that was unanswered when
 * its connection died is not sent again after the reconnect (ioredis's default): its caller was
 * told it failed (timed out), and a publish that arrives after its failure was reported would be
 * both counted lost and delivered, or, in a history room, published twice when the caller retries.
 * Subscriber: queue subscriptions until connected and never give up on them; ioredis
 * resubscribes by itself after a reconnect.
 */
const pubOptions = (t: LinkTiming): RedisOptions => ({ ...commonOptions(t), enableOfflineQueue: false, maxRetriesPerRequest: 1, autoResendUnfulfilledCommands: false });
const subOptions = (t: LinkTiming): RedisOptions => ({ ...commonOptions(t), maxRetriesPerRequest: null });

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

/** The setting `target` comes from and the servers it names, for the warnings of its outages. */
export function nameOf(target: RedisTarget): TargetName {
  if ('url' in target) return { setting: 'REDIS_URL', server: hostPort(target.url), tls: target.url.startsWith('rediss:') };
  if ('clusterNodes' in target) {
    return { setting: 'REDIS_CLUSTER_NODES', server: target.clusterNodes.map(hostPort).join(','), tls: target.clusterNodes.some((u) => u.startsWith('rediss:')) };
  }
  return { setting: 'REDIS_SENTINELS', server: target.sentinels.map((s) => `${s.host}:${s.port}`).join(','), tls: false };
}

function hostPort(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '6379'}`;
  } catch {
    // The configuration checked it; said as it is rather than thrown from a warning.
    return '(not a URL)';
  }
}

export interface WatchOptions {
  /** Counts connections dropped for not answering in time (`herald_redis_link_drops_total`). */
  metrics?: Pick<Metrics, 'redisLinkDropped'>;
  /**
   * Someone else reports this client's outages once each, the first at start included (the bus:
   * `Reachability`): its errors and reconnects are logged at debug level here, not every 10 s.
   */
  outagesReported?: boolean;
  /** The setting this client's Redis comes from, named in its warnings (e.g. `REDIS_URL`). */
  setting?: string;
  /** Told of every error, for the outage report's cause. */
  onError?: (err: Error) => void;
}

/** Attaches the listeners every herald Redis client needs: errors logged (throttled), never thrown. */
export function watchClient(client: RedisClient, name: string, logger: Logger, opts: WatchOptions = {}): void {
  const errorLog = throttle(ERROR_LOG_INTERVAL_MS);
  let wasReady = false;
  client.on('error', (err: Error) => {
    opts.onError?.(err);
    if (err.message.startsWith('Socket timeout')) opts.metrics?.redisLinkDropped(name);
    // The bus's own connections: their outages, the first one at start included, have one
    // warning each with the setting and the reason (src/cluster/reachability.ts). Others warn
    // here (throttled), so a misconfiguration (a wrong password) shows at once.
    if (opts.outagesReported) logger.debug({ client: name, err: err.message }, 'redis connection error');
    else if (errorLog.due()) logger.warn({ client: name, setting: opts.setting, reason: reasonOf(err), err: err.message }, 'redis connection error');
  });
  // A cluster reports its node connections' errors (a node's socket timeout among them) apart.
  if (client instanceof Cluster) {
    client.on('node error', (err: Error, node: string) => {
      opts.onError?.(err);
      if (err.message.startsWith('Socket timeout')) opts.metrics?.redisLinkDropped(name);
      logger.debug({ client: name, node, err: err.message }, 'redis cluster node error');
    });
  }
  client.on('ready', () => {
    wasReady = true;
    errorLog.reset();
    // Which server: behind Sentinel it changes with every failover.
    logger.info({ client: name, server: client instanceof Redis ? serverOf(client) : undefined }, 'redis ready');
  });
  client.on('close', () => {
    if (wasReady) logger[opts.outagesReported ? 'info' : 'warn']({ client: name }, 'redis connection closed; reconnecting');
    wasReady = false;
  });
}

export interface RedisPair {
  readonly pub: RedisClient;
  readonly sub: RedisClient;
  readonly cluster: boolean;
  /** True while both connections are usable. */
  isReady(): boolean;
  /** Whether Redis is reachable, with one warning per outage (and one line when it is back). */
  readonly reachability: Reachability;
  /** Quits both clients, forcing a disconnect after `timeoutMs`. Idempotent. */
  close(timeoutMs: number): Promise<void>;
}

export interface PairOptions {
  timing: LinkTiming;
  /** Names the connections in Redis (`CLIENT LIST`): `herald:<replica>:pub` and `:sub`. */
  replicaId: string;
  logger: Logger;
  metrics?: Pick<Metrics, 'redisLinkDropped'>;
}

export function createRedisPair(target: RedisTarget, opts: PairOptions): RedisPair {
  const { logger, timing } = opts;
  const named = (options: RedisOptions, role: string): RedisOptions => ({ ...options, connectionName: `herald:${opts.replicaId}:${role}` });
  const [pubOpts, subOpts] = [named(pubOptions(timing), 'pub'), named(subOptions(timing), 'sub')];
  const [pub, sub] =
    'url' in target
      ? [new Redis(target.url, pubOpts), new Redis(target.url, subOpts)]
      : 'clusterNodes' in target
        ? [createCluster(target.clusterNodes, pubOpts, false), createCluster(target.clusterNodes, subOpts, true)]
        : [createSentinelClient(target, pubOpts), createSentinelClient(target, subOpts)];
  // The outage's cause, for its warning: the last error that says why (ECONNREFUSED from a
  // cluster node rather than the cluster's "Failed to refresh slots cache" that follows it).
  let cause: Error | undefined;
  const onError = (err: Error) => {
    if (cause === undefined || reasonOf(err) !== 'other' || reasonOf(cause) === 'other') cause = err;
  };
  const watch = { metrics: opts.metrics, outagesReported: true, onError };
  watchClient(pub, 'pub', logger, watch);
  watchClient(sub, 'sub', logger, watch);
  const failovers =
    'sentinels' in target
      ? followFailovers(target, [pub as Redis, sub as Redis], named(commonOptions(timing), 'sentinel-watch'), (client, name) => watchClient(client, name, logger, { metrics: opts.metrics, setting: 'REDIS_SENTINELS' }), logger)
      : undefined;
  // ioredis reports `ready` before its automatic resubscribe has been answered. A PING sent after
  // it is answered after the SUBSCRIBEs, so once it returns this replica hears the bus again.
  let subscribed = false;
  sub.on('ready', () => {
    sub.ping().then(
      () => {
        subscribed = sub.status === 'ready';
      },
      onError,
    );
  });
  sub.on('close', () => {
    subscribed = false;
  });
  // A watcher's dead link is logged by its own socket timeout (watchClient), and is no outage of
  // the bus (a lost watcher only delays a failover's switch): its missed PINGs are not a cause.
  const pings = [pub, sub, ...(failovers?.watchers ?? [])].map((client) => pingLinks(client, timing, client === pub || client === sub ? onError : () => undefined));
  const isReady = () => pub.status === 'ready' && sub.status === 'ready' && subscribed;
  const reachability = trackReachability({ isReady, clients: [pub, sub], cause: () => cause, target: nameOf(target), checkMs: timing.pingMs, logger });
  let closing: Promise<void> | undefined;
  return {
    pub,
    sub,
    cluster: 'clusterNodes' in target,
    isReady,
    reachability,
    close(timeoutMs) {
      failovers?.close();
      for (const p of pings) p.close();
      reachability.close();
      closing ??= Promise.all([quitBounded(pub, timeoutMs), quitBounded(sub, timeoutMs)]).then(() => undefined);
      return closing;
    },
  };
}

/**
 * An ioredis Cluster from seed URLs. Credentials and TLS come from the URLs (`rediss://` for
 * Azure Cache for Redis); `dnsLookup` keeps the host names TLS certificates are issued for;
 * the subscriber uses one connection per shard for SSUBSCRIBE. `options` become every node
 * connection's and every shard subscriber's (timeouts and name included).
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
