import type { RedisClient } from '../cluster/redis.js';
import { HeraldError } from '../errors.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { LiveState } from '../observability/live.js';
import type { Metrics } from '../observability/metrics.js';

/** How often each replica computes and shares its numbers. */
export const STATS_INTERVAL_MS = 2000;
/** A replica whose numbers are older than this is left out of the cluster view. */
const STALE_MS = 10_000;

/** One replica's recent numbers, as the status page shows them. */
export interface ReplicaStats {
  replica: string;
  connections: number;
  rooms: number;
  /** Deliveries per second over the last interval. */
  deliveredPerSecond: number;
  /** Publishes accepted per second over the last interval. */
  publishedPerSecond: number;
  /** 99th percentile fan-out latency over the last interval, ms; null when nothing was delivered. */
  p99Ms: number | null;
  phase: string;
  at: number;
}

/**
 * Every STATS_INTERVAL_MS each replica turns its counters into rates and, with Redis, writes them
 * to a shared hash, so any replica can show the whole cluster.
 */
export class StatsReporter {
  private last: ReplicaStats;
  private readonly failureLog = throttle(10_000);
  private prev: { at: number; delivered: number; published: number };
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly opts: {
      replicaId: string;
      metrics: Metrics;
      live: LiveState;
      redis: RedisClient | undefined;
      keyPrefix: string;
      /** For the shared hash's failures (quiet during an outage: src/cluster/reachability.ts). */
      logger: Logger;
    },
  ) {
    const snap = opts.metrics.snapshot();
    this.prev = { at: Date.now(), delivered: snap.delivered, published: snap.published };
    this.last = this.compute();
    this.timer = setInterval(() => this.tick(), STATS_INTERVAL_MS);
    this.timer.unref();
  }

  current(): ReplicaStats {
    return this.last;
  }

  /** Every replica with fresh numbers (this one at least), sorted by id. */
  async cluster(): Promise<ReplicaStats[]> {
    // Without Redis the page shows this replica alone, as on a single node.
    const others = this.opts.redis ? await this.opts.redis.hgetall(this.key()).catch((err: Error) => this.failed<Record<string, string>>('read', err, {})) : {};
    const now = Date.now();
    const all = new Map<string, ReplicaStats>();
    for (const [replica, json] of Object.entries(others)) {
      const s = this.parse(replica, json);
      if (s && now - s.at < STALE_MS) all.set(s.replica, s);
    }
    all.set(this.last.replica, this.last);
    return [...all.values()].sort((a, b) => a.replica.localeCompare(b.replica));
  }

  close(): void {
    clearInterval(this.timer);
    void this.opts.redis?.hdel(this.key(), this.opts.replicaId).catch((err: Error) => this.failed('remove', err, 0));
  }

  private key(): string {
    return `${this.opts.keyPrefix}-stats`;
  }

  private tick(): void {
    this.last = this.compute();
    const { redis } = this.opts;
    if (redis) void redis.hset(this.key(), this.opts.replicaId, JSON.stringify(this.last)).catch((err: Error) => this.failed('write', err, 0));
  }

  /** The other replicas' view misses this replica's numbers, or theirs, until the next tick: logged, nothing else. */
  private failed<T>(what: 'read' | 'write' | 'remove', err: Error, fallback: T): T {
    if (this.failureLog.due()) this.opts.logger.warn({ what, err: err.message }, 'status page stats: the shared hash in Redis failed');
    return fallback;
  }

  /** Another replica's numbers; a field that is not (counted: `stored_data_invalid`) is left out. */
  private parse(replica: string, json: string): ReplicaStats | undefined {
    try {
      const s = JSON.parse(json) as Partial<ReplicaStats> | null;
      if (typeof s?.replica === 'string' && typeof s.at === 'number') return s as ReplicaStats;
    } catch {
      // Reported below, as for a value of the wrong shape.
    }
    const err = new HeraldError('stored_data_invalid', `The stats of replica "${replica}" are not herald's JSON.`);
    this.opts.metrics.storedDataInvalid('stats');
    if (this.failureLog.due()) this.opts.logger.warn({ replica, code: err.code, err: err.message }, 'status page stats: skipped a replica whose numbers cannot be read');
    return undefined;
  }

  private compute(): ReplicaStats {
    const { metrics, live } = this.opts;
    const now = Date.now();
    const snap = metrics.snapshot();
    const seconds = Math.max(0.001, (now - this.prev.at) / 1000);
    const latencies = metrics.takeLatencyWindow().sort((a, b) => a - b);
    const stats: ReplicaStats = {
      replica: this.opts.replicaId,
      connections: live.connections(),
      rooms: live.rooms(),
      deliveredPerSecond: Math.round((snap.delivered - this.prev.delivered) / seconds),
      publishedPerSecond: Math.round((snap.published - this.prev.published) / seconds),
      p99Ms: latencies.length === 0 ? null : Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))]! * 10000) / 10,
      phase: live.phase(),
      at: now,
    };
    this.prev = { at: now, delivered: snap.delivered, published: snap.published };
    return stats;
  }
}
