import type { Server } from 'socket.io';
import { HeraldError } from '../errors.js';
import { memoryAdapter, redisAdapter, shardedAdapter, type HeraldAdapterDeps } from './adapter.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { isConnectionRoom, type RoomName } from '../protocol/rooms.js';
import { guardFireAndForget } from './guard.js';
import type { LinkTiming } from './link.js';
import type { Reachability } from './reachability.js';
import { createRedisPair, ERROR_LOG_INTERVAL_MS, type RedisPair, type RedisTarget } from './redis.js';

export type BusKind = 'memory' | 'redis' | 'sharded';

/** The `unavailable` message of a subscribe this replica could not make hear its room (sharded mode). */
export const ROOM_CHANNEL_FAILED = "This replica could not subscribe to the room's channel in Redis; retry the subscribe.";

/**
 * How replicas share rooms and broadcasts. The bus never sees clients: it only installs a
 * Socket.IO adapter on the server it is given.
 *
 * Guarantees: at-most-once between replicas (Redis pub/sub). Local delivery never depends on the
 * bus: while Redis is down, a publish still reaches this replica's subscribers, and the lost
 * cross-replica copy is counted in `Metrics.busPublishFailed`.
 * `sharded`: a replica subscribes to a room's channel only while it has a local member there, so
 * its Redis traffic follows its own rooms, not the cluster's.
 */
export interface Bus {
  readonly kind: BusKind;
  /** The Redis connections, for other Redis-backed parts (history, presence); undefined for `memory`. */
  readonly redis: RedisPair | undefined;
  /** Installs herald's adapter (src/cluster/adapter.ts) on `io`. Call once, before clients connect. */
  install(io: Server, deps: HeraldAdapterDeps): void;
  /**
   * Resolves once this replica hears `room`'s broadcasts from Redis (sharded: its shard channel is
   * subscribed). Call after a join, before telling the client it is subscribed. Rejects with
   * `unavailable` (counted in `herald_room_subscribe_failures_total`) when the subscribe failed.
   */
  awaitRoom(room: RoomName): Promise<void>;
  /** Redis messages this replica received (every channel), for the per-replica traffic metric. */
  messagesReceived(): number;
  /** False while a configured Redis is unreachable; readiness reports it. */
  isReady(): boolean;
  /** `isReady` with its changes and one warning per outage (always up for `memory`). */
  readonly reachability: Reachability;
  /** Releases connections, bounded by `timeoutMs`. Idempotent. */
  close(timeoutMs: number): Promise<void>;
}

export interface BusOptions {
  target: RedisTarget | undefined;
  mode: 'classic' | 'sharded';
  keyPrefix: string;
  /** REDIS_TIMEOUT_SECONDS, as the connections apply it (src/cluster/link.ts). */
  timing: LinkTiming;
  replicaId: string;
  logger: Logger;
  metrics: Metrics;
}

const ALWAYS_UP: Reachability = { up: true, downSince: undefined, onChange: () => {}, close: () => {} };

export function createBus(opts: BusOptions): Bus {
  if (opts.target === undefined) {
    return {
      kind: 'memory',
      redis: undefined,
      install: (io, deps) => void io.adapter(memoryAdapter(deps) as never),
      awaitRoom: async () => {},
      messagesReceived: () => 0,
      isReady: () => true,
      reachability: ALWAYS_UP,
      close: async () => {},
    };
  }
  const { logger, metrics } = opts;
  const pair = createRedisPair(opts.target, { timing: opts.timing, replicaId: opts.replicaId, logger, metrics });
  const failureLog = throttle(ERROR_LOG_INTERVAL_MS);
  const subscribeLog = throttle(ERROR_LOG_INTERVAL_MS);
  /** Broadcasts lost during the current outage: said in one line when Redis is back. */
  let lostInOutage = 0;
  pair.reachability.onChange((up) => {
    if (!up) return;
    if (lostInOutage > 0) logger.warn({ broadcasts: lostInOutage }, 'broadcasts to rooms without history that could not reach the other replicas during the outage (herald_bus_publish_failures_total)');
    lostInOutage = 0;
  });
  const onFailure = (command: string, err: Error) => {
    if (command === 'publish' || command === 'spublish') {
      metrics.busPublishFailed();
      lostInOutage++;
    }
    // During a known outage the failures are counted; the outage had its one warning.
    if (pair.reachability.up && failureLog.due()) logger.warn({ command, err: err.message }, 'redis command failed; local delivery continues');
    else logger.debug({ command, err: err.message }, 'redis command failed; local delivery continues');
  };
  let received = 0;
  for (const event of ['messageBuffer', 'pmessageBuffer', 'smessageBuffer']) pair.sub.on(event, () => received++);
  const sharded = opts.mode === 'sharded';
  return {
    kind: sharded ? 'sharded' : 'redis',
    redis: pair,
    install(io, deps) {
      const pub = guardFireAndForget(pair.pub, onFailure);
      const sub = guardFireAndForget(pair.sub, onFailure);
      io.adapter((sharded ? shardedAdapter(pub, sub, { channelPrefix: opts.keyPrefix }, deps) : redisAdapter(pub, sub, { key: opts.keyPrefix }, deps)) as never);
    },
    async awaitRoom(room) {
      // Rooms that look like socket ids stay on the adapter's main channel (always subscribed).
      if (!sharded || isConnectionRoom(room)) return;
      // The adapter subscribed this room's channel on its creation without waiting; the same
      // SSUBSCRIBE again travels the same shard connection, so its answer follows the first one.
      try {
        await pair.sub.ssubscribe(`${opts.keyPrefix}#/#${room}#`);
      } catch (err) {
        metrics.roomSubscribeFailed('room');
        if (subscribeLog.due()) logger.warn({ room, err: (err as Error).message }, 'could not subscribe to a room\'s shard channel; subscribe refused (unavailable)');
        throw new HeraldError('unavailable', ROOM_CHANNEL_FAILED, { cause: err });
      }
    },
    messagesReceived: () => received,
    isReady: () => pair.isReady(),
    reachability: pair.reachability,
    close: (timeoutMs) => pair.close(timeoutMs),
  };
}
