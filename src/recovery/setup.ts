import type { Server } from 'socket.io';
import { grantedRooms } from '../auth/access.js';
import { identityOf } from '../auth/identity.js';
import { clientAddress } from '../limits/client-ip.js';
import type { Bus } from '../cluster/bus.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { RoomName } from '../protocol/rooms.js';
import { Journal } from './journal.js';
import { Recovery } from './recovery.js';
import { createRedisSessionStore } from './redis-store.js';
import { createMemorySessionStore } from './store.js';

/**
 * Connection state recovery (CONNECTION_RECOVERY_SECONDS), its sessions where the bus keeps its
 * state (Redis, or this process's memory); undefined when off. Herald's adapter runs it: build it
 * before the adapter is installed.
 */
export function createRecovery(
  config: Config,
  deps: { io: Server; bus: Bus; isHistoryRoom(room: RoomName): boolean; logger: Logger; metrics: Metrics },
): Recovery | undefined {
  if (config.connectionRecoverySeconds === 0) return undefined;
  const { io, bus } = deps;
  const journal = new Journal({ roomEntries: config.recoveryJournalRoomEntries, entries: config.recoveryJournalEntries, socketSends: config.recoverySocketSends });
  const perUser = config.recoverySessionsPerUser;
  const redis = bus.redis;
  const liveness = redis && !redis.cluster
    ? { sub: redis.sub, epoch: journal.epoch, onFailure: (err: Error) => deps.logger.warn({ err: err.message }, 'could not subscribe to this replica\'s liveness channel; the others will not wait for a session of its that is not written yet') }
    : undefined;
  const store = redis
    ? createRedisSessionStore(redis.pub, config.redisKeyPrefix, perUser, config.recoveryJournalRoomEntries, liveness, config.recoverySessionsPerAddress)
    : createMemorySessionStore(journal, perUser, Date.now, config.recoverySessionsPerAddress);
  return new Recovery({
    store,
    journal,
    windowMs: config.connectionRecoverySeconds * 1000,
    isHistoryRoom: deps.isHistoryRoom,
    identityOf,
    grantedOf: (socket) => [...grantedRooms(socket)],
    addressOf: (socket) => clientAddress(socket.handshake.headers['x-forwarded-for'], socket.handshake.address, config.trustProxy),
    inUse: (room) => io.of('/').adapter.rooms.has(room),
    maxRooms: config.maxSubscriptions,
    // Commands come over Redis: while it is away, this replica hears none, and a link that died
    // silently is found out up to REDIS_TIMEOUT_SECONDS later (src/cluster/link.ts).
    heardUntil: () => {
      const down = bus.reachability.downSince;
      return down === undefined ? Date.now() : down - config.redisTimeoutSeconds * 1000;
    },
    portableWindowMs: (config.connectionRecoverySeconds + config.redisOutageCloseSeconds + config.redisTimeoutSeconds) * 1000,
    logger: deps.logger,
    metrics: deps.metrics,
  });
}
