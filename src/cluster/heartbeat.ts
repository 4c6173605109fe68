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
 *
 * A replica that lost Redis for a while may have lost writes (a member's removal, a room's
 * release) and, past the TTL, been declared dead by the others, who then dropped its members and
 * released its rooms. So whenever its connection comes back, and whenever a beat finds that its
 * key had expired or was taken meanwhile (a partition that healed without the connection
 * dropping, an event loop stalled past the TTL), it takes a new nonce: everything written under
 * the old one stops counting at once (readers delete it), and the owners (`onRenewed`) write what
 * this replica holds now under the new one. Presence is then right within one beat of the heal.
 */
export interface Heartbeat {
  readonly replicaId: string;
  /** This instance's current nonce: `<replicaId>/<instance>` names it in Redis. Changes when renewed. */
  readonly instance: string;
  /** Writes the heartbeat now. */
  beat(): Promise<void>;
  /** The live instance of each replica, null where its heartbeat expired. */
  liveInstances(replicas: readonly string[]): Promise<(string | null)[]>;
  /**
   * `listener` writes again what this replica holds: called (in registration order) once Redis
   * is ready for the first time, after every reconnect, and when a beat found the key lost.
   */
  onRenewed(listener: () => Promise<void>): void;
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

const nonce = () => randomBytes(6).toString('hex');

export function createHeartbeat(opts: HeartbeatOptions): Heartbeat {
  const { redis, logger } = opts;
  let instance = nonce();
  const key = `${opts.keyPrefix}-presence-replica:${opts.replicaId}`;
  const failureLog = throttle(10_000);
  const listeners: (() => Promise<void>)[] = [];
  // herald's publisher has no offline queue: a beat before the first connection would fail and be
  // logged on every start. Until the client has been ready once, beats are skipped; the renewal
  // on `ready` writes the first one.
  let connected = redis.status === 'ready';
  /** The current nonce has been written: a later beat that finds another value means it was lost. */
  let written = false;
  let closed = false;

  const renew = async (why: string) => {
    if (closed) return;
    if (why !== 'connected') {
      instance = nonce();
      written = false;
      logger.info({ why, instance }, 'heartbeat renewed; rewriting presence and room state');
    }
    await beat();
    for (const l of listeners) {
      await l().catch((err: Error) => {
        if (failureLog.due()) logger.warn({ err: err.message }, 'rewriting presence or room state failed; retried on the next reconnect');
      });
    }
  };

  const beat = async () => {
    if (!connected || closed) return;
    const mine = instance;
    try {
      const previous = await redis.set(key, mine, 'EX', opts.ttlSeconds, 'GET');
      if (mine !== instance) return;
      const lost = written && previous !== mine;
      written = true;
      if (lost) void renew(previous === null ? 'heartbeat expired: other replicas counted this one as gone' : 'heartbeat taken over');
    } catch (err) {
      if (failureLog.due()) logger.warn({ err: (err as Error).message }, 'heartbeat write failed; retried every third of PRESENCE_TTL_SECONDS');
    }
  };
  redis.on('ready', () => {
    const again = connected;
    connected = true;
    void renew(again ? 'reconnected' : 'connected');
  });
  if (connected) void beat();
  const timer = setInterval(() => void beat(), (opts.ttlSeconds * 1000) / 3);
  timer.unref();
  return {
    replicaId: opts.replicaId,
    get instance() {
      return instance;
    },
    beat,
    // One GET per replica: replica keys may live in different cluster slots.
    liveInstances: (replicas) => Promise.all(replicas.map((r) => redis.get(`${opts.keyPrefix}-presence-replica:${r}`))),
    onRenewed(listener) {
      listeners.push(listener);
      // Registered after the first connection: it has missed that renewal.
      if (connected) void listener().catch((err: Error) => logger.warn({ err: err.message }, 'rewriting presence or room state failed'));
    },
    async close() {
      closed = true;
      clearInterval(timer);
      await redis.eval(RELEASE_SCRIPT, 1, key, instance).catch((err: Error) => {
        if (failureLog.due()) logger.warn({ err: err.message }, 'heartbeat release failed; this replica stops counting after PRESENCE_TTL_SECONDS');
      });
    },
  };
}
