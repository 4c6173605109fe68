import { Server } from 'socket.io';
import type { Config } from '../config/schema.js';
import type { Lifecycle } from '../lifecycle/lifecycle.js';
import { clientIp } from '../limits/client-ip.js';
import { KeyedLimiter } from '../limits/token-bucket.js';
import type { Metrics } from '../observability/metrics.js';

export interface SocketServerDeps {
  /** Refuses from the start of the drain: new connections go to the other replicas. */
  lifecycle: Pick<Lifecycle, 'refusingConnections'>;
  /** True while this replica has given up on Redis (src/lifecycle/outage.ts). */
  refusingForOutage(): boolean;
  metrics: Metrics;
  /** CONNECT_RATE_PER_IP / CONNECT_BURST_PER_IP, shared with event streams; made here when not given. */
  connectLimiter?: KeyedLimiter;
}

/**
 * The Socket.IO server, before any transport or adapter: its options from the configuration and
 * the handshake gate, which refuses (in this order) while draining (`draining`), while cut off
 * from Redis (`redis_unreachable`), a WebSocket Origin not in CORS_ORIGINS, and an address past
 * CONNECT_RATE_PER_IP (`rate_limited`, counted as an auth failure).
 */
export function createSocketServer(config: Config, deps: SocketServerDeps): Server {
  const { lifecycle, metrics } = deps;
  const anyOrigin = config.corsOrigins.includes('*');
  const connectLimiter = deps.connectLimiter ?? new KeyedLimiter(config.connectRatePerIp, config.connectBurstPerIp);
  return new Server({
    // The status page loads the client from <SOCKETIO_PATH>/socket.io.js.
    serveClient: config.statusPage,
    path: config.socketioPath,
    // Sent to clients in the handshake; proxies with short idle timeouts need a shorter interval.
    pingInterval: config.pingIntervalMs,
    pingTimeout: config.pingTimeoutMs,
    maxHttpBufferSize: config.clientMaxBytes,
    // uWS closes a WebSocket whose queue passes this (the slow-consumer bound; src/transport/uws-attach.ts).
    ...({ maxBackpressure: config.slowClientMaxBytes } as object),
    cors: { origin: anyOrigin ? true : [...config.corsOrigins], credentials: true },
    // herald's adapter keeps the sessions (src/recovery/); middlewares run again on a restore,
    // so a session id alone restores nothing without a valid token for the same user.
    ...(config.connectionRecoverySeconds > 0 ? { connectionStateRecovery: { maxDisconnectionDuration: config.connectionRecoverySeconds * 1000, skipMiddlewares: false } } : {}),
    allowRequest: (req, callback) => {
      const origin = req.headers.origin;
      const refuse = (reason: 'draining' | 'redis_unreachable' | 'origin' | 'rate_limited', message: string) => {
        metrics.connectionRefused(reason);
        callback(message, false);
      };
      if (lifecycle.refusingConnections) refuse('draining', 'draining');
      else if (deps.refusingForOutage()) refuse('redis_unreachable', 'redis_unreachable');
      // CORS does not cover WebSockets: check the Origin of every handshake that has one.
      else if (origin !== undefined && !anyOrigin && !config.corsOrigins.includes(origin)) refuse('origin', 'origin not allowed');
      else if (!connectLimiter.take(clientIp(req, config.trustProxy))) {
        metrics.authFailed('rate_limited');
        refuse('rate_limited', 'rate_limited');
      } else callback(null, true);
    },
  });
}
