import type { Server } from 'socket.io';
import { AccessPolicy } from '../auth/access.js';
import type { TokenVerifier } from '../auth/jwt.js';
import { createTokenVerifier } from '../auth/jwt.js';
import { createProxies, type ConnectProxy, type SubscribeProxy } from '../auth/proxy.js';
import type { Bus } from '../cluster/bus.js';
import type { Config } from '../config/schema.js';
import type { HistoryRooms, RoomBudget } from '../history/rooms.js';
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

/** What the event streams (src/sse/) share with Socket.IO clients: the same rules, the same allowances. */
export interface RealtimeRules {
  readonly policy: AccessPolicy;
  /** The token verifier behind the revocation guard; undefined without JWT settings. */
  readonly verifier: TokenVerifier | undefined;
  readonly connectProxy: ConnectProxy | undefined;
  readonly subscribeProxy: SubscribeProxy | undefined;
  /** The allowance of new history rooms of a client address (HISTORY_NEW_ROOMS_PER_IP). */
  newRooms(address: string): RoomBudget;
}

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
): RealtimeRules {
  const { io, recovery, logger, metrics } = deps;
  const policy = new AccessPolicy(config.publicRooms);
  const proxies = createProxies(config, metrics, logger);
  const verifier = deps.guardVerifier(createTokenVerifier(config));
  const sessions = new Sessions(io, {
    connectProxy: proxies.connect,
    connects: deps.connects,
    verifier,
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
      return budgetOf(clientAddress(socket.handshake.headers['x-forwarded-for'], socket.handshake.address, config.trustProxy));
    },
  });
  function budgetOf(address: string): RoomBudget {
    return { take: () => newRooms.take(address), giveBack: () => newRooms.giveBack(address) };
  }
  return { policy, verifier, connectProxy: proxies.connect, subscribeProxy: proxies.subscribe, newRooms: budgetOf };
}
