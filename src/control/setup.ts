import type { Server } from 'socket.io';
import type { TokenVerifier } from '../auth/jwt.js';
import { createRedisRevocations, MemoryRevocations, refusingRevoked } from '../auth/revocations.js';
import type { Bus } from '../cluster/bus.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { HistoryRooms } from '../history/rooms.js';
import type { Route } from '../http/route.js';
import { ClusterCommands } from './cluster.js';
import { createControlAuthorizer } from '../auth/control-keys.js';
import { applyLocally, type OtherConnections } from './local.js';
import { controlRoutes } from './routes.js';
import type { Recovery } from '../recovery/recovery.js';
import { applyToWaiting, waitingChange } from './waiting.js';

export interface Control {
  /** `verifier` refusing revoked tokens (undefined stays undefined: no tokens, nothing to revoke). */
  guard(verifier: TokenVerifier | undefined): TokenVerifier | undefined;
  readonly routes: Route[];
}

/**
 * The control API and revocations, built from what the rest of the app already has: the
 * adapter for cluster-wide commands, the bus's Redis for revocations (memory on a single node),
 * the history rooms for server-side joins.
 */
export function createControl(deps: {
  config: Config;
  io: Server;
  bus: Bus;
  history: HistoryRooms | undefined;
  /** Connection recovery, whose waiting sessions commands reach too; undefined when off. */
  recovery: Recovery | undefined;
  metrics: Metrics;
  logger: Logger;
  /** Connections that are not sockets (event streams), which the commands reach too. */
  others?: OtherConnections;
}): Control {
  const { config, io, bus, metrics, logger, recovery } = deps;
  const known = new MemoryRevocations();
  const shared = bus.redis ? createRedisRevocations({ redis: bus.redis.pub, keyPrefix: config.redisKeyPrefix }) : undefined;
  const local = { io, replicaId: config.replicaId, history: deps.history, bus, known, transportOf: (s: { conn: { transport: { name: string } } }) => s.conn.transport.name, others: deps.others };
  const commands = new ClusterCommands(
    io,
    config.controlTimeoutMs,
    async (command) => {
      const report = await applyLocally(command, local);
      if (command.kind !== 'list') metrics.controlApplied(command.kind, report.count);
      // Sessions of connections that dropped just before the command are written before this
      // replica reports, so the second run over the waiting sessions finds them (see ClusterCommands).
      const change = recovery ? waitingChange(command) : undefined;
      if (recovery && change) await recovery.settle(change.match, config.controlTimeoutMs);
      return report;
    },
    logger,
    recovery && applyToWaiting(recovery, deps.history, logger),
  );
  if (config.controlKeys.length === 0) {
    logger.warn(config.production ? 'CONTROL_KEYS is not set: the control API is off' : 'CONTROL_KEYS is not set: the control API accepts loopback callers only');
  }
  return {
    guard: (verifier) => verifier && refusingRevoked(verifier, { known, shared, metrics, logger }),
    routes: controlRoutes({
      commands,
      auth: createControlAuthorizer(config.controlKeys, config.publishKeys, config.production),
      revocations: shared ?? known,
      revocationTtlSeconds: config.revocationTtlSeconds,
      clockSkewMs: config.jwtClockSkewSeconds * 1000,
      metrics,
      logger,
    }),
  };
}
