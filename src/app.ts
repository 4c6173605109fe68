import type { Socket } from 'socket.io';
import { installAdminUi } from './admin/setup.js';
import { createPublishAuthorizer } from './auth/publish-keys.js';
import { createBus } from './cluster/bus.js';
import { createHeartbeat } from './cluster/heartbeat.js';
import { linkTiming } from './cluster/link.js';
import { quietWhileDown } from './cluster/reachability.js';
import { redisTargetOf } from './cluster/redis.js';
import type { Config, TransportKind } from './config/schema.js';
import { createControl } from './control/setup.js';
import { createBackendEvents } from './events/setup.js';
import { historyRoutes } from './history/routes.js';
import { refusingForeignHistory } from './history/foreign.js';
import { createHistory, historyPolicies } from './history/setup.js';
import { createIngest } from './ingest/setup.js';
import { drainReplica, WEBHOOK_FLUSH_MS } from './lifecycle/drain.js';
import { healthRoutes } from './lifecycle/health.js';
import { createLifecycle, type Phase } from './lifecycle/lifecycle.js';
import { guardOutages, refusingAfterOutage } from './lifecycle/outage.js';
import { registerLiveGauges, registerRequestGauge } from './observability/live.js';
import type { Logger } from './observability/logger.js';
import { createMetricsServer, metricsRoutes } from './observability/metrics-http.js';
import { createMetrics } from './observability/metrics.js';
import { presenceRoutes } from './presence/routes.js';
import { createPresence } from './presence/setup.js';
import { publishRoutes } from './publish/routes.js';
import { createPublisher } from './publish/service.js';
import { createConflation } from './realtime/conflation.js';
import { ConnectGuard } from './realtime/connect-guard.js';
import { deliveryObserver } from './realtime/deliveries.js';
import { createSocketServer } from './realtime/server.js';
import { createRealtime } from './realtime/setup.js';
import { SlowConsumers } from './realtime/slow-consumers.js';
import { createRecovery } from './recovery/setup.js';
import { liveStateOf } from './status/live.js';
import { statusRoutes } from './status/routes.js';
import { StatsReporter } from './status/stats.js';
import { createHttpService } from './transport/http.js';
import { createTransport } from './transport/index.js';
import { createAdmission } from './transport/admission.js';
import { REFUSAL_CODES } from './transport/types.js';
import { KeyedLimiter } from './limits/token-bucket.js';
import { createSseHub, sseRoutes } from './sse/setup.js';
import { streamCommands } from './sse/control.js';

export interface HeraldApp {
  readonly phase: Phase;
  /**
   * Binds the port and starts serving. Resolves with the port, the transport in use, and Redis:
   * `none` (not configured), `up`, or `connecting` (not usable yet: once it is, `redis ready` is
   * logged; if it fails, `redis unreachable at start` with the setting and the reason).
   */
  start(): Promise<{ port: number; transport: TransportKind; redis: 'none' | 'up' | 'connecting' }>;
  /**
   * Graceful stop: readiness turns 503 at once; after `drainDelaySeconds` new connections are
   * refused and connected clients are closed in batches over `drainSeconds`, then Socket.IO, the
   * port and Redis are closed.
   * Idempotent: later calls return the first drain's promise.
   */
  drain(): Promise<void>;
}

/**
 * Composition root: each step builds one concern from `config` and what the steps above returned,
 * so the order below is the order of dependence. Nothing is assigned later: `start` only binds
 * ports and starts consuming, `drain` only stops what was built.
 */
export function createApp(config: Config, logger: Logger): HeraldApp {
  const { replicaId, redisKeyPrefix: keyPrefix } = config;
  // The replica's phase, its counters, and Redis (or none): every part below reports through these.
  const lifecycle = createLifecycle();
  const metrics = createMetrics();
  const timing = linkTiming(config.redisTimeoutSeconds * 1000);
  const bus = createBus({ target: redisTargetOf(config), mode: config.redisMode, keyPrefix, timing, replicaId, logger, metrics });
  // For the parts that write to Redis: an outage has its one warning (src/cluster/reachability.ts).
  const redisLog = quietWhileDown(logger, bus.reachability);

  // Socket.IO, the transport it will be served on, and herald's adapter between them.
  const transport = createTransport(config.transport, logger);
  const refusingForOutage = refusingAfterOutage(bus.reachability, config.redisOutageCloseSeconds * 1000);
  // One allowance of new connections per client address, for Socket.IO handshakes and event streams.
  const connectLimiter = new KeyedLimiter(config.connectRatePerIp, config.connectBurstPerIp);
  const io = createSocketServer(config, { lifecycle, refusingForOutage, metrics, connectLimiter });
  // Server-Sent Events streams: members of the adapter's rooms, delivered to by it (src/sse/).
  const sse = createSseHub(config, { io, metrics, logger });
  // MAX_CONNECTIONS, Socket.IO's and the streams' together.
  const admission = createAdmission(config.maxConnections, config.handshakeMaxLagMs, metrics, logger, () => sse.size);
  const historyRooms = historyPolicies(config);
  const recovery = createRecovery(config, { io, bus, isHistoryRoom: (room) => historyRooms.match(room) !== undefined, logger: redisLog, metrics });
  const admitRemote = historyRooms.size > 0 ? refusingForeignHistory(historyRooms, metrics, logger) : undefined;
  const conflation = createConflation(config, { delivery: transport.delivery, positions: recovery, metrics });
  bus.install(io, { delivery: transport.delivery, recovery, conflation, observe: deliveryObserver(metrics), admitRemote, streams: sse });

  // Rooms: history, publishing into them, the control API, presence, webhooks; then the clients.
  const slow = new SlowConsumers(io, { boundBytes: config.slowClientMaxBytes }, metrics, logger);
  const history = createHistory({ io, bus, policies: historyRooms, keyPrefix, journal: recovery?.journal, pace: slow.pace, logger, redisLogger: redisLog, metrics, conflated: conflation ? (room) => conflation.covers(room) : undefined });
  const publisher = createPublisher(io, metrics, history, timing.timeoutMs, logger);
  const control = createControl({ config, io, bus, history, recovery, metrics, logger, others: streamCommands({ hub: sse, history, bus, metrics, logger, replicaId }) });
  const connects = new ConnectGuard(metrics, logger, { restoresPerMinute: config.recoveryRestoresPerIp, trustProxy: config.trustProxy });
  installAdminUi(config, io, connects, logger);
  // One liveness per replica, for presence and the webhooks' room transitions, which rewrite what they hold when it is renewed.
  const heartbeat =
    bus.redis && (config.presenceRooms.length > 0 || config.webhookUrl)
      ? createHeartbeat({ redis: bus.redis.pub, keyPrefix, replicaId, ttlSeconds: config.presenceTtlSeconds, logger: redisLog })
      : undefined;
  const presence = createPresence(config, { io, bus, heartbeat, logger: redisLog, others: sse });
  const events = createBackendEvents({ config, io, bus, heartbeat, metrics, logger, redisLogger: redisLog, others: sse });
  const rules = createRealtime(config, { io, bus, connects, guardVerifier: control.guard, recovery, history, presence: presence?.rooms, publisher, slow, logger, metrics });

  // What the replica serves over HTTP and reports.
  const live = liveStateOf({ io, bus, lifecycle, slow, streams: sse });
  registerLiveGauges(metrics.registry, live);
  const stats = new StatsReporter({ replicaId, metrics, live, redis: bus.redis?.pub, keyPrefix, logger: redisLog });
  const publishAuth = createPublishAuthorizer(config.publishKeys);
  const http = createHttpService({
    routes: [
      ...healthRoutes({ lifecycle, bus, metrics, replicaId }),
      ...publishRoutes(publisher, publishAuth),
      ...historyRoutes(history, publishAuth),
      ...presenceRoutes(presence?.rooms, publishAuth),
      ...control.routes,
      ...sseRoutes(config, {
        hub: sse,
        rules,
        history,
        bus,
        connects: connectLimiter,
        refusing: () => (lifecycle.refusingConnections ? 'draining' : refusingForOutage() ? 'redis_unreachable' : undefined),
        busy: () => {
          const reason = admission.refusal?.(io.engine.clientsCount);
          return reason && REFUSAL_CODES[reason];
        },
        metrics,
        logger,
      }),
      ...(config.metricsPort === undefined ? metricsRoutes(metrics, (req) => void publishAuth.check(req.headers, req.remoteAddress)) : []),
      ...(config.statusPage ? statusRoutes(stats, config.socketioPath) : []),
    ],
    maxBodyBytes: config.publishMaxBytes,
    requestTimeoutMs: config.httpRequestTimeoutSeconds * 1000,
    replicaId,
    logger,
    closing: () => lifecycle.refusingConnections,
  });
  registerRequestGauge(metrics.registry, http);
  const metricsServer = config.metricsPort === undefined ? undefined : createMetricsServer(metrics, logger);
  const ingest = createIngest(config, { publisher, timing, metrics, logger });

  // Leaving: on a long Redis outage (clients only), and on a drain (everything).
  const finalOffset = (socket: Socket) => recovery?.finalOffset(socket);
  const outage = bus.kind === 'memory' ? undefined : guardOutages({ io, reachability: bus.reachability, closeAfterMs: config.redisOutageCloseSeconds * 1000, lifecycle, finalOffset, logger, metrics, closeOthers: (body) => sse.closeAll(body) });
  const drain = once(() =>
    drainReplica({
      io,
      lifecycle,
      delayMs: config.drainDelaySeconds * 1000,
      drainMs: config.drainSeconds * 1000,
      redisBudgetMs: timing.timeoutMs + WEBHOOK_FLUSH_MS,
      redisUp: () => bus.isReady(),
      finalOffset,
      stopIntake: async () => {
        outage?.close();
        // Event streams end at once with a `retry:`: their EventSource reconnects through the
        // balancer with Last-Event-ID (one landing here again is sent on after its `retry:`).
        sse.drain();
        await ingest.close();
      },
      async closeLocal() {
        slow.close();
        sse.close();
        stats.close();
        admission.close();
        transport.stopListening();
        await metricsServer?.close();
      },
      // In this order: closing Socket.IO closes what is left and starts their sessions' saves.
      redisWork: [
        // Requests in flight (a publish waiting on Redis) are answered before Redis closes and
        // the process exits: an accepted publish never loses its answer to the drain.
        { what: 'requests', run: () => http.settled() },
        { what: 'socket.io', run: () => io.close() },
        { what: 'webhooks', run: async () => events?.close() },
        { what: 'sessions', run: async () => recovery?.flush(timing.timeoutMs) },
        { what: 'presence', run: async () => presence?.backend.close() },
        { what: 'heartbeat', run: async () => heartbeat?.close() },
      ],
      closeBus: (ms) => bus.close(ms),
      sessionsNotSaved: () => metrics.snapshot().sessionsNotSaved,
      busPublishFailures: () => metrics.snapshot().busPublishFailures,
      logger,
    }),
  );

  return {
    get phase() {
      return lifecycle.phase;
    },
    async start() {
      const { port, kind } = await transport.listen({ host: config.host, port: config.port, io, http, broadcastBatchMs: config.broadcastBatchMs, compression: config.wsCompression, admission });
      if (config.metricsPort !== undefined) await metricsServer?.listen(config.host, config.metricsPort);
      ingest.start();
      lifecycle.advance('ready');
      return { port, transport: kind, redis: bus.kind === 'memory' ? 'none' : bus.isReady() ? 'up' : 'connecting' };
    },
    drain,
  };
}

/** `fn`'s first call's result, for every call. */
function once<T>(fn: () => T): () => T {
  let first: { value: T } | undefined;
  return () => (first ??= { value: fn() }).value;
}
