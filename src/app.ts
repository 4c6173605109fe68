import { Server } from 'socket.io';
import { createBus } from './cluster/bus.js';
import type { Config, TransportKind } from './config/schema.js';
import { closeConnectionsInBatches, createLifecycle, type Phase } from './lifecycle/lifecycle.js';
import { healthRoutes } from './observability/health.js';
import type { Logger } from './observability/logger.js';
import { createMetrics } from './observability/metrics.js';
import { createPublishAuthorizer } from './publish/keys.js';
import { publishRoutes } from './publish/routes.js';
import { createPublisher } from './publish/service.js';
import { registerRealtime } from './realtime/connection.js';
import { createHttpService } from './transport/http.js';
import { startTransport, type RunningTransport } from './transport/index.js';

/** Time allowed for Redis clients to quit after the drain. */
const BUS_CLOSE_TIMEOUT_MS = 2000;

export interface HeraldApp {
  readonly phase: Phase;
  /** Binds the port and starts serving. Resolves with the port and the transport in use. */
  start(): Promise<{ port: number; transport: TransportKind }>;
  /**
   * Graceful stop: readiness turns 503 and new connections are refused at once, connected clients
   * are closed in batches over `drainSeconds`, then Socket.IO, the port and Redis are closed.
   * Idempotent: later calls return the first drain's promise.
   */
  drain(): Promise<void>;
}

/** Composition root: builds every part from `config` and wires them together. */
export function createApp(config: Config, logger: Logger): HeraldApp {
  const lifecycle = createLifecycle();
  const metrics = createMetrics();
  const bus = createBus({ redisUrl: config.redisUrl, keyPrefix: config.redisKeyPrefix, logger, metrics });
  const io = new Server({
    serveClient: false,
    allowRequest: (_req, callback) => {
      if (lifecycle.refusingConnections) callback('draining', false);
      else callback(null, true);
    },
  });
  bus.install(io);
  registerRealtime(io, { logger, metrics, replicaId: config.replicaId });
  const publisher = createPublisher(io, metrics);
  const http = createHttpService({
    routes: [
      ...healthRoutes({ lifecycle, bus, metrics, replicaId: config.replicaId }),
      ...publishRoutes(publisher, createPublishAuthorizer(config.publishKeys)),
    ],
    maxBodyBytes: config.publishMaxBytes,
    replicaId: config.replicaId,
    logger,
  });

  let transport: RunningTransport | undefined;
  let draining: Promise<void> | undefined;

  async function drain(): Promise<void> {
    lifecycle.advance('draining');
    const connections = io.of('/').sockets.size;
    logger.info({ connections, drainSeconds: config.drainSeconds }, 'draining');
    const closed = await closeConnectionsInBatches(io, config.drainSeconds * 1000);
    await io.close();
    transport?.stopListening();
    await bus.close(BUS_CLOSE_TIMEOUT_MS);
    lifecycle.advance('stopped');
    logger.info({ closed }, 'drained');
  }

  return {
    get phase() {
      return lifecycle.phase;
    },
    async start() {
      transport = await startTransport(config.transport, { host: config.host, port: config.port, io, http }, logger);
      lifecycle.advance('ready');
      return { port: transport.port, transport: transport.kind };
    },
    drain() {
      draining ??= drain();
      return draining;
    },
  };
}
