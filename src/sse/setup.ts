import type { Server } from 'socket.io';
import type { Bus } from '../cluster/bus.js';
import type { Config } from '../config/schema.js';
import type { HistoryRooms } from '../history/rooms.js';
import type { Route } from '../http/route.js';
import type { KeyedLimiter } from '../limits/token-bucket.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { RealtimeRules } from '../realtime/setup.js';
import { SseHub } from './hub.js';
import { streamRoutes } from './routes.js';

/** The hub of this replica's event streams: made before the adapter, which delivers to it. */
export function createSseHub(config: Config, deps: { io: Server; metrics: Metrics; logger: Logger }): SseHub {
  return new SseHub(deps.io, { heartbeatMs: config.sseHeartbeatSeconds * 1000, retryMs: config.sseRetryMs, perAddress: config.sseStreamsPerIp }, deps.metrics, deps.logger);
}

/** `GET /v1/stream`, under the same rules as Socket.IO clients (`rules`, from createRealtime). */
export function sseRoutes(
  config: Config,
  deps: {
    hub: SseHub;
    rules: RealtimeRules;
    history: HistoryRooms | undefined;
    bus: Bus;
    connects: KeyedLimiter;
    refusing(): 'draining' | 'redis_unreachable' | undefined;
    busy(): 'over_capacity' | 'overloaded' | undefined;
    metrics: Metrics;
    logger: Logger;
  },
): Route[] {
  return streamRoutes({
    hub: deps.hub,
    history: deps.history,
    bus: deps.bus,
    metrics: deps.metrics,
    logger: deps.logger,
    policy: deps.rules.policy,
    verifier: deps.rules.verifier,
    connectProxy: deps.rules.connectProxy,
    subscribeProxy: deps.rules.subscribeProxy,
    newRooms: (address) => deps.rules.newRooms(address),
    allowAnonymous: config.allowAnonymous,
    clockSkewMs: config.jwtClockSkewSeconds * 1000,
    refusing: deps.refusing,
    busy: deps.busy,
    connects: deps.connects,
    trustProxy: config.trustProxy,
    maxRooms: config.sseMaxRooms,
    retryMs: config.sseRetryMs,
    boundBytes: config.slowClientMaxBytes,
    replicaId: config.replicaId,
    corsOrigins: config.corsOrigins,
  });
}
