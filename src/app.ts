import { instrument } from '@socket.io/admin-ui';
import { ADMIN_NAMESPACE, installAdminLogin } from './admin/login.js';
import { Server, type Socket } from 'socket.io';
import { AccessPolicy } from './auth/access.js';
import { createTokenVerifier } from './auth/jwt.js';
import { createProxies } from './auth/proxy.js';
import { createHeartbeat, type Heartbeat } from './cluster/heartbeat.js';
import { createBackendEvents } from './events/setup.js';
import { createControl } from './control/setup.js';
import { KeyedLimiter } from './limits/token-bucket.js';
import { clientAddress, clientIp } from './limits/client-ip.js';
import type { HeraldAdapterDeps, LocalDelivery } from './cluster/adapter.js';
import { Journal } from './recovery/journal.js';
import { Recovery } from './recovery/recovery.js';
import { createMemorySessionStore } from './recovery/store.js';
import { createRedisSessionStore } from './recovery/redis-store.js';
import { encodePortable, portableStateOf } from './recovery/portable.js';
import { grantedRooms } from './realtime/join.js';
import { createBus, type Bus } from './cluster/bus.js';
import { redisTargetOf } from './cluster/redis.js';
import { linkTiming } from './cluster/link.js';
import { quietWhileDown } from './cluster/reachability.js';
import { Sessions } from './realtime/session.js';
import { identityOf } from './auth/identity.js';
import { ConnectGuard } from './realtime/connect-guard.js';
import { createMemoryHistory } from './history/memory.js';
import { createRedisHistory } from './history/redis.js';
import { historyRoutes } from './history/routes.js';
import { createMemoryPresence } from './presence/memory.js';
import { createRedisPresence } from './presence/redis.js';
import { presenceRoutes } from './presence/routes.js';
import { PresenceRooms } from './presence/rooms.js';
import { PatternTable } from './protocol/patterns.js';
import { HistoryRooms } from './history/rooms.js';
import { metricsRoutes, startMetricsServer } from './observability/metrics-http.js';
import { deliveryObserver } from './realtime/deliveries.js';
import { SlowConsumers } from './realtime/slow-consumers.js';
import type { LiveState } from './observability/metrics.js';
import { StatsReporter } from './status/stats.js';
import { statusRoutes } from './status/routes.js';
import { startAmqpIngest } from './ingest/amqp.js';
import { startStreamIngest } from './ingest/redis-streams.js';
import type { Config, TransportKind } from './config/schema.js';
import { createLifecycle, type Phase } from './lifecycle/lifecycle.js';
import { drainReplica, WEBHOOK_FLUSH_MS } from './lifecycle/drain.js';
import { guardOutages } from './lifecycle/outage.js';
import { healthRoutes } from './lifecycle/health.js';
import type { Logger } from './observability/logger.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { createPublishAuthorizer } from './auth/publish-keys.js';
import { publishRoutes } from './publish/routes.js';
import { createPublisher } from './publish/service.js';
import { registerRealtime } from './realtime/connection.js';
import { createHttpService } from './transport/http.js';
import { startTransport, type RunningTransport } from './transport/index.js';

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

/** History rooms on the bus's Redis, or in memory on a single node; undefined without HISTORY_ROOMS. */
function createHistory(config: Config, io: Server, bus: Bus, logger: Logger, redisLog: Logger, metrics: Metrics, journal: Journal | undefined, slow: SlowConsumers): HistoryRooms | undefined {
  if (config.historyRooms.length === 0) return undefined;
  const backend = bus.redis
    ? createRedisHistory({ pub: bus.redis.pub, sub: bus.redis.sub, keyPrefix: config.redisKeyPrefix, sharded: bus.kind === 'sharded', logger: redisLog })
    : createMemoryHistory();
  const policies = new PatternTable(
    config.historyRooms.map((r) => ({
      pattern: r.pattern,
      value: { size: r.size ?? config.historySize, ttlSeconds: r.ttlSeconds ?? config.historyTtlSeconds, last: r.last },
    })),
  );
  return new HistoryRooms(io, backend, policies, logger, metrics, journal, slow.pace);
}

/** Presence on the bus's Redis (resynced whenever Redis is ready again), or in memory; undefined without PRESENCE_ROOMS. */
function createPresence(config: Config, io: Server, bus: Bus, heartbeat: Heartbeat | undefined, logger: Logger) {
  if (config.presenceRooms.length === 0) return undefined;
  const backend = bus.redis && heartbeat
    ? createRedisPresence({ redis: bus.redis.pub, keyPrefix: config.redisKeyPrefix, heartbeat, logger })
    : createMemoryPresence();
  const rooms = new PresenceRooms(io, backend, new PatternTable(config.presenceRooms.map((r) => ({ pattern: r.pattern, value: r }))));
  heartbeat?.onRenewed(() => rooms.resync());
  return { backend, rooms };
}

/** Connection state recovery (CONNECTION_RECOVERY_SECONDS), its sessions where the bus keeps its state. */
function createRecovery(config: Config, io: Server, bus: Bus, logger: Logger, metrics: Metrics, isHistoryRoom: (room: string) => boolean): Recovery | undefined {
  if (config.connectionRecoverySeconds === 0) return undefined;
  const journal = new Journal({ roomEntries: config.recoveryJournalRoomEntries, entries: config.recoveryJournalEntries, socketSends: config.recoverySocketSends });
  const perUser = config.recoverySessionsPerUser;
  const store = bus.redis
    ? createRedisSessionStore(bus.redis.pub, config.redisKeyPrefix, perUser, config.recoveryJournalRoomEntries)
    : createMemorySessionStore(journal, perUser);
  return new Recovery({
    store,
    journal,
    windowMs: config.connectionRecoverySeconds * 1000,
    isHistoryRoom,
    identityOf,
    grantedOf: (socket) => [...grantedRooms(socket)],
    inUse: (room) => io.of('/').adapter.rooms.has(room),
    maxRooms: config.maxSubscriptions,
    logger,
    metrics,
  });
}

/** Composition root: builds every part from `config` and wires them together. */
export function createApp(config: Config, logger: Logger): HeraldApp {
  const lifecycle = createLifecycle();
  const metrics = createMetrics();
  const timing = linkTiming(config.redisTimeoutSeconds * 1000);
  const bus = createBus({ target: redisTargetOf(config), mode: config.redisMode, keyPrefix: config.redisKeyPrefix, timing, replicaId: config.replicaId, logger, metrics });
  // For the parts that write to Redis: an outage has its one warning (src/cluster/reachability.ts).
  const redisLog = quietWhileDown(logger, bus.reachability);
  const anyOrigin = config.corsOrigins.includes('*');
  const connectLimiter = new KeyedLimiter(config.connectRatePerIp, config.connectBurstPerIp);
  const io = new Server({
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
      if (lifecycle.refusingConnections) callback('draining', false);
      else if (outage?.refusing) callback('redis_unreachable', false);
      // CORS does not cover WebSockets: check the Origin of every handshake that has one.
      else if (origin !== undefined && !anyOrigin && !config.corsOrigins.includes(origin)) callback('origin not allowed', false);
      else if (!connectLimiter.take(clientIp(req, config.trustProxy))) {
        metrics.authFailed('rate_limited');
        callback('rate_limited', false);
      } else callback(null, true);
    },
  });
  // The adapter delivers through the transport's fast path once the transport runs (uWS).
  const delivery: { current: LocalDelivery | undefined } = { current: undefined };
  let history: HistoryRooms | undefined;
  // Sessions that could not be saved, for the drain's summary.
  let sessionsNotSaved = 0;
  const recoveryMetrics: Metrics = Object.assign(Object.create(metrics) as Metrics, {
    sessionRecovery(outcome: Parameters<Metrics['sessionRecovery']>[0]) {
      if (outcome === 'save_failed') sessionsNotSaved++;
      metrics.sessionRecovery(outcome);
    },
  });
  const recovery = createRecovery(config, io, bus, redisLog, recoveryMetrics, (room) => history?.policyFor(room) !== undefined);
  const adapterDeps: HeraldAdapterDeps = { delivery, recovery };
  bus.install(io, adapterDeps);
  const connects = new ConnectGuard(metrics, logger, { restoresPerMinute: config.recoveryRestoresPerIp, trustProxy: config.trustProxy });
  if (config.adminUiUsername && config.adminUiPasswordHash) {
    // herald's login (rate-limited, bcrypt off the event loop) instead of admin-ui's basic auth.
    installAdminLogin(io.of(ADMIN_NAMESPACE), {
      username: config.adminUiUsername,
      passwordHash: config.adminUiPasswordHash,
      attemptsPerIpPerMinute: config.adminUiLoginsPerIp,
      attemptsPerConnectionPerMinute: config.adminUiLoginsPerConnection,
      trustedProxies: config.trustProxy,
      connects,
      logger,
    });
    instrument(io, { namespaceName: ADMIN_NAMESPACE, auth: false, mode: 'production', readonly: true });
  }
  const slow = new SlowConsumers(io, { boundBytes: config.slowClientMaxBytes }, metrics, logger);
  history = createHistory(config, io, bus, logger, redisLog, metrics, recovery?.journal, slow);
  const policy = new AccessPolicy(config.publicRooms);
  const publisher = createPublisher(io, metrics, history, timing.timeoutMs);
  const control = createControl({ config, io, bus, history, recovery, metrics, logger });
  const proxies = createProxies(config, metrics, logger);
  const sessions = new Sessions(io, {
    connectProxy: proxies.connect,
    connects,
    verifier: control.guard(createTokenVerifier(config)),
    clockSkewMs: config.jwtClockSkewSeconds * 1000,
    policy,
    allowAnonymous: config.allowAnonymous,
    logger,
    metrics,
  });
  if (recovery) io.of('/').use(recovery.check);
  // One liveness per replica, for presence and the webhooks' room transitions, which rewrite what they hold when it is renewed.
  const heartbeat =
    bus.redis && (config.presenceRooms.length > 0 || config.webhookUrl)
      ? createHeartbeat({ redis: bus.redis.pub, keyPrefix: config.redisKeyPrefix, replicaId: config.replicaId, ttlSeconds: config.presenceTtlSeconds, logger: redisLog })
      : undefined;
  const presence = createPresence(config, io, bus, heartbeat, redisLog);
  const events = createBackendEvents({ config, io, bus, heartbeat, metrics, logger, redisLogger: redisLog });
  let transport: RunningTransport | undefined;
  const live: LiveState = {
    connectionsByTransport() {
      const counts: Record<string, number> = {};
      for (const s of io.of('/').sockets.values()) counts[s.conn.transport.name] = (counts[s.conn.transport.name] ?? 0) + 1;
      return counts;
    },
    rooms: () => io.of('/').adapter.rooms.size - io.of('/').adapter.sids.size,
    subscriptions() {
      let n = 0;
      for (const rooms of io.of('/').adapter.sids.values()) n += rooms.size - 1;
      return n;
    },
    redisUp: () => (bus.kind === 'memory' ? undefined : bus.isReady() ? 1 : 0),
    phase: () => lifecycle.phase,
    maxOutboundBytes: () => slow.maxOutboundBytes(),
    redisMessagesReceived: () => (bus.kind === 'memory' ? undefined : bus.messagesReceived()),
  };
  metrics.bindLiveState(live);
  const stats = new StatsReporter({ replicaId: config.replicaId, metrics, live, redis: bus.redis?.pub, keyPrefix: config.redisKeyPrefix });
  const newRooms = new KeyedLimiter(config.historyNewRoomsPerIp / 60, config.historyNewRoomsPerIp);
  registerRealtime(io, {
    logger,
    metrics,
    replicaId: config.replicaId,
    history,
    policy,
    publisher,
    presence: presence?.rooms,
    limits: { rate: config.clientRate, burst: config.clientBurst, maxSubscriptions: config.maxSubscriptions },
    slow,
    bus,
    sessions,
    journal: recovery?.journal,
    subscribeProxy: proxies.subscribe,
    newRooms(socket) {
      const address = clientAddress(socket.handshake.headers['x-forwarded-for'], socket.handshake.address, config.trustProxy);
      return { take: () => newRooms.take(address), giveBack: () => newRooms.giveBack(address) };
    },
  });
  const publishAuth = createPublishAuthorizer(config.publishKeys);
  const http = createHttpService({
    routes: [
      ...healthRoutes({ lifecycle, bus, metrics, replicaId: config.replicaId }),
      ...publishRoutes(publisher, publishAuth),
      ...historyRoutes(history, publishAuth),
      ...presenceRoutes(presence?.rooms, publishAuth),
      ...control.routes,
      ...(config.metricsPort === undefined ? metricsRoutes(metrics, (req) => void publishAuth.check(req.headers, req.remoteAddress)) : []),
      ...(config.statusPage ? statusRoutes(stats, config.socketioPath) : []),
    ],
    maxBodyBytes: config.publishMaxBytes,
    requestTimeoutMs: config.httpRequestTimeoutSeconds * 1000,
    replicaId: config.replicaId,
    logger,
  });

  const ingest: { close(): Promise<void> }[] = [];
  let draining: Promise<void> | undefined;
  let metricsServer: { close(): Promise<void> } | undefined;
  /** A socket's last packet's offset: portable, so it recovers elsewhere even when its session cannot be saved. */
  const finalOffset = (socket: Socket): string | undefined =>
    recovery &&
    encodePortable(
      portableStateOf(socket, recovery.journal, {
        isHistoryRoom: (room) => history?.policyFor(room) !== undefined,
        granted: grantedRooms(socket),
        user: identityOf(socket).userId ?? null,
      }),
    );
  const outage = bus.kind === 'memory' ? undefined : guardOutages({ io, reachability: bus.reachability, closeAfterMs: config.redisOutageCloseSeconds * 1000, lifecycle, finalOffset, logger, metrics });

  const drain = () =>
    drainReplica({
      io,
      lifecycle,
      drainMs: config.drainSeconds * 1000,
      redisBudgetMs: timing.timeoutMs + WEBHOOK_FLUSH_MS,
      redisUp: () => bus.isReady(),
      finalOffset,
      stopIntake: async () => {
        outage?.close();
        await Promise.all(ingest.map((i) => i.close()));
      },
      async closeLocal() {
        slow.close();
        stats.close();
        transport?.stopListening();
        await metricsServer?.close();
      },
      // In this order: closing Socket.IO closes what is left and starts their sessions' saves.
      redisWork: [
        { what: 'socket.io', run: () => io.close() },
        { what: 'webhooks', run: async () => events?.close() },
        { what: 'sessions', run: async () => recovery?.flush(timing.timeoutMs) },
        { what: 'presence', run: async () => presence?.backend.close() },
        { what: 'heartbeat', run: async () => heartbeat?.close() },
      ],
      closeBus: (ms) => bus.close(ms),
      sessionsNotSaved: () => sessionsNotSaved,
      busPublishFailures: () => metrics.snapshot().busPublishFailures,
      logger,
    });

  return {
    get phase() {
      return lifecycle.phase;
    },
    async start() {
      transport = await startTransport(config.transport, { host: config.host, port: config.port, io, http, delivery, broadcastBatchMs: config.broadcastBatchMs, compression: config.wsCompression }, logger);
      adapterDeps.observe = deliveryObserver(metrics);
      if (config.metricsPort !== undefined) metricsServer = await startMetricsServer(metrics, config.host, config.metricsPort);
      const common = { publisher, maxBytes: config.publishMaxBytes, metrics, logger };
      if (config.ingestStreams.length > 0 && config.redisUrl) {
        ingest.push(
          startStreamIngest({
            ...common,
            redisUrl: config.redisUrl,
            timing,
            streams: config.ingestStreams,
            group: config.ingestGroup,
            consumer: config.replicaId,
            batch: config.ingestBatch,
            claimIdleMs: config.ingestClaimIdleSeconds * 1000,
          }),
        );
      }
      if (config.amqpUrl) {
        ingest.push(
          startAmqpIngest({
            ...common,
            url: config.amqpUrl,
            exchange: config.amqpExchange,
            exchangeType: config.amqpExchangeType,
            queue: config.amqpQueue,
            bindingKeys: config.amqpBindingKeys,
            prefetch: config.amqpPrefetch,
          }),
        );
      }
      lifecycle.advance('ready');
      return { port: transport.port, transport: transport.kind };
    },
    drain() {
      draining ??= drain();
      return draining;
    },
  };
}
