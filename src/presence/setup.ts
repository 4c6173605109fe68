import type { Server } from 'socket.io';
import type { Bus } from '../cluster/bus.js';
import type { Heartbeat } from '../cluster/heartbeat.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { PatternTable } from '../protocol/patterns.js';
import type { OtherMembers } from '../protocol/members.js';
import { createMemoryPresence } from './memory.js';
import { createRedisPresence } from './redis.js';
import { PresenceRooms } from './rooms.js';
import type { PresenceBackend } from './types.js';

/**
 * Presence on the bus's Redis (resynced whenever the heartbeat is renewed: Redis may have lost
 * it), or in memory on a single node; undefined without PRESENCE_ROOMS. Build after herald's
 * adapter is installed on `io` (it follows the adapter's join and leave events).
 */
export function createPresence(
  config: Config,
  deps: { io: Server; bus: Bus; heartbeat: Heartbeat | undefined; logger: Logger; others?: OtherMembers },
): { backend: PresenceBackend; rooms: PresenceRooms } | undefined {
  if (config.presenceRooms.length === 0) return undefined;
  const { io, bus, heartbeat } = deps;
  const backend =
    bus.redis && heartbeat
      ? createRedisPresence({ redis: bus.redis.pub, keyPrefix: config.redisKeyPrefix, heartbeat, logger: deps.logger })
      : createMemoryPresence();
  const rooms = new PresenceRooms(io, backend, new PatternTable(config.presenceRooms.map((r) => ({ pattern: r.pattern, value: r }))), deps.others);
  heartbeat?.onRenewed(() => rooms.resync());
  return { backend, rooms };
}
