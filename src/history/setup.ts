import type { Server } from 'socket.io';
import type { Bus } from '../cluster/bus.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { PatternTable } from '../protocol/patterns.js';
import type { RoomName } from '../protocol/rooms.js';
import type { Journal } from '../recovery/journal.js';
import type { Pace } from './catchup.js';
import { createMemoryHistory } from './memory.js';
import { createRedisHistory } from './redis.js';
import { HistoryRooms, type HistoryRoomPolicy } from './rooms.js';

/**
 * Which rooms keep history, and how much (HISTORY_ROOMS, with HISTORY_SIZE and
 * HISTORY_TTL_SECONDS for rooms that say nothing), known before anything else is built:
 * connection recovery asks it too.
 */
export function historyPolicies(config: Config): PatternTable<HistoryRoomPolicy> {
  return new PatternTable(
    config.historyRooms.map((r) => ({
      pattern: r.pattern,
      value: { size: r.size ?? config.historySize, ttlSeconds: r.ttlSeconds ?? config.historyTtlSeconds, last: r.last, ...(r.delta ? { delta: true } : {}) },
    })),
  );
}

/**
 * History rooms on the bus's Redis, or in memory on a single node; undefined without
 * HISTORY_ROOMS. Build after herald's adapter is installed on `io` (it follows the adapter's rooms).
 */
export function createHistory(deps: {
  io: Server;
  bus: Bus;
  policies: PatternTable<HistoryRoomPolicy>;
  keyPrefix: string;
  /** With connection recovery on: what each socket was sent. */
  journal: Journal | undefined;
  /** Catch-ups send at the pace their socket takes them (src/realtime/slow-consumers.ts). */
  pace: Pace;
  logger: Logger;
  /** For the backend's Redis errors (quiet during an outage). */
  redisLogger: Logger;
  metrics: Metrics;
  /** Whether a room's messages are conflated for slow connections (CONFLATE_ROOMS). */
  conflated?: (room: RoomName) => boolean;
}): HistoryRooms | undefined {
  const { io, bus, policies } = deps;
  if (policies.size === 0) return undefined;
  const backend = bus.redis
    ? createRedisHistory({ pub: bus.redis.pub, sub: bus.redis.sub, keyPrefix: deps.keyPrefix, sharded: bus.kind === 'sharded', logger: deps.redisLogger, metrics: deps.metrics })
    : createMemoryHistory();
  return new HistoryRooms(io, backend, policies, deps.logger, deps.metrics, deps.journal, deps.pace, deps.conflated);
}
