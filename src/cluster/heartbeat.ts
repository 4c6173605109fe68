import { randomBytes } from 'node:crypto';
import type { RedisClient } from './redis.js';
import { throttle, type Logger } from '../observability/logger.js';

const RELEASE_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * Which replicas are alive, as Redis sees it: each replica's key `<prefix>-presence-replica:<id>`
 * holds the nonce of its running instance, refreshed every ttl/3 with a TTL of ttl. A replica that
 * dies (kill -9, partition) stops counting once its key expires; one restarted under the same id
 * overwrites it at once, so its previous instance stops counting immediately. Presence and the
 * room transitions of the webhooks share it, so there is one heartbeat per replica.
 */
export interface Heartbeat {
  readonly replicaId: string;
  /** This process's nonce: `<replicaId>/<instance>` names this instance in Redis. */
  readonly instance: string;
  /** Writes the heartbeat now (the owner calls it when Redis turns ready). */
  beat(): Promise<void>;
  /** The live instance of each replica, null where its heartbeat expired. */
  liveInstances(replicas: readonly string[]): Promise<(string | null)[]>;
  /** Stops beating and retires this instance at once, unless a newer one took its key over. */
  close(): Promise<void>;
}

export interface HeartbeatOptions {
  redis: RedisClient;
  keyPrefix: string;
  replicaId: string;
  ttlSeconds: number;
  logger: Logger;
}

export function createHeartbeat(opts: HeartbeatOptions): Heartbeat {
  const { redis, logger } = opts;
  const instance = randomBytes(6).toString('hex');
  const keyOf = (replica: string) => `${opts.keyPrefix}-presence-replica:${replica}`;
  const failureLog = throttle(10_000);
  // herald's publisher has no offline queue: a beat before the first connection would fail and be
  // logged on every start. Until the client has been ready once, beats are skipped; the owner's
  // beat on `ready` writes the first one.
  let connected = redis.status === 'ready';
  if (!connected) redis.once('ready', () => (connected = true));
  const beat = async () => {
    if (!connected) return;
    try {
      await redis.set(keyOf(opts.replicaId), instance, 'EX', opts.ttlSeconds);
    } catch (err) {
      if (failureLog.due()) logger.warn({ err: (err as Error).message }, 'heartbeat write failed; retried every third of PRESENCE_TTL_SECONDS');
    }
  };
  void beat();
  const timer = setInterval(() => void beat(), (opts.ttlSeconds * 1000) / 3);
  timer.unref();
  return {
    replicaId: opts.replicaId,
    instance,
    beat,
    // One GET per replica: replica keys may live in different cluster slots.
    liveInstances: (replicas) => Promise.all(replicas.map((r) => redis.get(keyOf(r)))),
    async close() {
      clearInterval(timer);
      await redis.eval(RELEASE_SCRIPT, 1, keyOf(opts.replicaId), instance).catch((err: Error) => {
        if (failureLog.due()) logger.warn({ err: err.message }, 'heartbeat release failed; this replica stops counting after PRESENCE_TTL_SECONDS');
      });
    },
  };
}
