import type { Server } from 'socket.io';
import { AccessPolicy } from '../auth/access.js';
import type { TokenVerifier } from '../auth/jwt.js';
import { createTokenVerifier } from '../auth/jwt.js';
import { createProxies } from '../auth/proxy.js';
import type { Bus } from '../cluster/bus.js';
import type { Config } from '../config/schema.js';
import type { HistoryRooms } from '../history/rooms.js';
import { clientAddress } from '../limits/client-ip.js';
import { KeyedLimiter } from '../limits/token-bucket.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { PresenceRooms } from '../presence/rooms.js';
import type { Publisher } from '../publish/service.js';
import type { Recovery } from '../recovery/recovery.js';
import type { ConnectGuard } from './connect-guard.js';
import { registerRealtime } from './connection.js';
import { Sessions } from './session.js';
import type { SlowConsumers } from './slow-consumers.js';

/**
 * The main namespace's clients, in the order Socket.IO runs them: authentication (a token, the
 * connect proxy or anonymous; behind the one-session-per-connection guard), then recovery's
 * re-check of a restored session, then the client events (subscribe, publish, presence, refresh).
 */
export function createRealtime(
  config: Config,
  deps: {
    io: Server;
    bus: Bus;
    connects: ConnectGuard;
    /** Wraps the token verifier: refuses revoked tokens (src/control/setup.ts). */
    guardVerifier(verifier: TokenVerifier | undefined): TokenVerifier | undefined;
    recovery: Recovery | undefined;
    history: HistoryRooms | undefined;
    presence: PresenceRooms | undefined;
    publisher: Publisher;
    slow: SlowConsumers;
    logger: Logger;
    metrics: Metrics;
  },
): void {
  const { io, recovery, logger, metrics } = deps;
  const policy = new AccessPolicy(config.publicRooms);
  const proxies = createProxies(config, metrics, logger);
  const sessions = new Sessions(io, {
    connectProxy: proxies.connect,
    connects: deps.connects,
    verifier: deps.guardVerifier(createTokenVerifier(config)),
    clockSkewMs: config.jwtClockSkewSeconds * 1000,
    policy,
    allowAnonymous: config.allowAnonymous,
    logger,
    metrics,
  });
  if (recovery) io.of('/').use(recovery.check);
  const newRooms = new KeyedLimiter(config.historyNewRoomsPerIp / 60, config.historyNewRoomsPerIp);
  registerRealtime(io, {
    logger,
    metrics,
    replicaId: config.replicaId,
    history: deps.history,
    policy,
    publisher: deps.publisher,
    presence: deps.presence,
    limits: { rate: config.clientRate, burst: config.clientBurst, maxSubscriptions: config.maxSubscriptions },
    slow: deps.slow,
    bus: deps.bus,
    sessions,
    journal: recovery?.journal,
    subscribeProxy: proxies.subscribe,
    newRooms(socket) {
      const address = clientAddress(socket.handshake.headers['x-forwarded-for'], socket.handshake.address, config.trustProxy);
      return { take: () => newRooms.take(address), giveBack: () => newRooms.giveBack(address) };
    },
  });
}
