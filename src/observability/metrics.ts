import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * What herald counts, named as domain verbs so transports and services never touch a metrics
 * library. Backed by prom-client (`GET /metrics`); `snapshot()` feeds `/readyz` and the status page.
 */
export interface Metrics {
  connectionOpened(transport: string): void;
  connectionClosed(): void;
  /** One publish accepted for `rooms` rooms, from `source` (`http`, `client`). */
  published(rooms: number, source: string): void;
  /** A broadcast handed to `recipients` local sockets, `latencySeconds` after its publish time. */
  delivered(recipients: number, latencySeconds: number | undefined): void;
  /** A message could not be handed to Redis; local subscribers still got it. */
  busPublishFailed(): void;
  /** A Redis connection (`pub`, `sub`, `ingest`, ...) received nothing for REDIS_TIMEOUT_SECONDS and was dropped. */
  redisLinkDropped(client: string): void;
  /** A publish answered 503 `publish_timeout`: Redis did not confirm it in time, its outcome is unknown. */
  publishUnconfirmed(): void;
  /** A history-room publish whose Idempotency-Key had been published before: answered with the first one's id. */
  publishDuplicate(): void;
  /** `clients` were closed because Redis had been unreachable for REDIS_OUTAGE_CLOSE_SECONDS. */
  outageDisconnected(clients: number): void;
  /**
   * A handshake refused before it became a connection: `capacity` (MAX_CONNECTIONS, 503), or by
   * `allowRequest` (403): `draining`, `redis_unreachable`, `origin`, `rate_limited`.
   */
  connectionRefused(reason: 'capacity' | 'overloaded' | 'draining' | 'redis_unreachable' | 'origin' | 'rate_limited'): void;
  /** The descriptor backstop closed the listen socket (false) or listens again (true). */
  acceptingChanged(accepting: boolean): void;
  /** The MAX_CONNECTIONS in force (`herald_connections_max`); undefined: no cap. */
  setMaxConnections(max: number | undefined): void;
  /**
   * A subscribe could not make this replica hear its room: the SSUBSCRIBE of its shard channel
   * (sharded mode) failed, for a history room (`history`) or another room (`room`). The subscribe
   * was refused with `unavailable`.
   */
  roomSubscribeFailed(kind: 'history' | 'room'): void;
  /**
   * Something herald had stored in Redis could not be read back (`stored_data_invalid`): a recovery
   * `session` (its client starts afresh), a `history_entry` (skipped), a replica's `stats`.
   */
  storedDataInvalid(what: 'session' | 'history_entry' | 'stats'): void;
  /**
   * A broadcast from outside herald (`@socket.io/redis-emitter`) named `rooms` history rooms: it
   * was not delivered there, since it bypassed their history (src/history/foreign.ts).
   */
  historyBroadcastRefused(rooms: number): void;
  /** A connection was refused authentication, by error code. */
  authFailed(code: string): void;
  /** A connection was closed for passing the outbound buffer bound (a slow consumer). */
  slowConsumerDisconnected(): void;
  /**
   * Conflation (CONFLATE_ROOMS, src/realtime/conflation.ts): a message held for a slow connection
   * was replaced by a newer one of its room (or dropped by a new subscribe there) and never written.
   */
  messageConflated(): void;
  /** Messages held for slow connections changed by `change` (one at most per connection and conflated room). */
  conflationHeld(change: number): void;
  /**
   * An ingest entry from `source` was `delivered` (broadcast, then acknowledged), a `duplicate`
   * (already published, acknowledged), `rejected` (bad, acknowledged) or `retried` (left for later);
   * `lagSeconds` from its creation to the broadcast.
   */
  ingested(source: string, outcome: 'delivered' | 'duplicate' | 'rejected' | 'retried', lagSeconds?: number): void;
  /**
   * A history room's live delivery was refilled from its stream after the bus reconnected:
   * `messages` were delivered that pub/sub had lost.
   */
  historyRefilled(messages: number): void;
  /** A history room's gap could not be filled; its members were sent `herald:reset`. */
  historyReset(code: 'history_lost' | 'history_unreachable'): void;
  /**
   * A delta room's message went to `recipients` delta subscribers of this replica: as a delta
   * (`kind` delta, `saved` bytes fewer per recipient than the whole message), or whole (`first`:
   * nothing delivered here before it to diff against; `larger`: the delta was not smaller).
   */
  deltaSent(kind: 'delta' | 'first' | 'larger', recipients: number, saved: number): void;
  /** What delta rooms hold on this replica: one previous payload per room with delta subscribers here, and their bytes. */
  deltaHeld(payloads: number, bytes: number): void;
  /**
   * A client's subscribe needed a new history room (a stream in Redis): `created`, or `refused`
   * because its address had used up HISTORY_NEW_ROOMS_PER_IP.
   */
  historyRoomCreation(outcome: 'created' | 'refused'): void;
  /**
   * A control command taken over HTTP by this replica was answered: `complete` when every replica
   * reported in time, `partial` when some did not, `failed` when it could not be sent (Redis down).
   */
  controlCommand(command: string, outcome: 'complete' | 'partial' | 'failed'): void;
  /** This replica applied a control command (its own or another replica's) to `connections` local connections. */
  controlApplied(command: string, connections: number): void;
  /** A revocation check could not reach the shared store; the token was judged on what this replica knows. */
  revocationCheckFailed(): void;
  /**
   * Connection state recovery: a dropped connection's session `saved` (or `save_failed`), an
   * older one `evicted` (over RECOVERY_SESSIONS_PER_USER); a returning one `recovered` whole,
   * `partial` (rooms back, `recovered: false`), `not_found` (expired, unknown, already used or
   * dropped by a control command), `lookup_failed` (the store could not be read, or the session
   * not parsed: a fresh session), `refused` (another user's session) or `rate_limited` (not
   * looked up: over RECOVERY_RESTORES_PER_IP, or a second restore on one connection).
   */
  sessionRecovery(outcome: 'saved' | 'save_failed' | 'evicted' | 'recovered' | 'partial' | 'not_found' | 'lookup_failed' | 'refused' | 'rate_limited'): void;
  /**
   * One webhook delivery attempt of `type` ended: `sent` (2xx), or `failed` (another status, a
   * timeout, no connection), after `latencySeconds`; `retried` when a failed one is scheduled again.
   */
  webhookAttempt(type: string, outcome: 'sent' | 'failed' | 'retried', latencySeconds?: number): void;
  /** A webhook given up: `queue_full` (never sent), `expired` (retried for WEBHOOK_RETRY_SECONDS), `shutdown`. */
  webhookDropped(type: string, reason: 'queue_full' | 'expired' | 'shutdown'): void;
  /**
   * A proxy request (`subscribe`, `connect`) was answered `allow`, `deny`, `unavailable` (no valid
   * answer in time), `busy` (refused before asking: too many in flight) or `cached` (not asked).
   */
  proxyAnswered(proxy: 'subscribe' | 'connect', outcome: 'allow' | 'deny' | 'unavailable' | 'busy' | 'cached', latencySeconds?: number): void;
  readonly registry: Registry;
  snapshot(): MetricsSnapshot;
  /** Fan-out latencies (seconds) seen since the last call, sampled to at most 10,000, and clears them. */
  takeLatencyWindow(): number[];
}

export interface MetricsSnapshot {
  connections: number;
  connectionsTotal: number;
  published: number;
  delivered: number;
  busPublishFailures: number;
  authFailures: Record<string, number>;
  /** Handshakes refused before they became connections, by reason (`connectionRefused`). */
  connectionsRefused: Record<string, number>;
  slowConsumerDisconnects: number;
  /** Messages held for slow connections in conflated rooms were replaced by newer ones (`herald_conflated_messages_total`). */
  conflatedMessages: number;
  /** Messages held right now for slow connections, one at most per connection and conflated room (`herald_conflation_held_messages`). */
  conflationHeld: number;
  /** Sessions of dropped connections that could not be saved (`herald_session_recovery_total{outcome="save_failed"}`). */
  sessionsNotSaved: number;
  ingest: Record<string, number>;
}

/** Fan-out latency buckets, seconds: from a millisecond to seconds. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Backend round trips (webhooks, proxies), seconds. */
const BACKEND_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const LATENCY_WINDOW = 10_000;

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'herald_' });
  const s: MetricsSnapshot = {
    connections: 0,
    connectionsTotal: 0,
    published: 0,
    delivered: 0,
    busPublishFailures: 0,
    authFailures: {},
    connectionsRefused: {},
    slowConsumerDisconnects: 0,
    conflatedMessages: 0,
    conflationHeld: 0,
    sessionsNotSaved: 0,
    ingest: {},
  };
  let window: number[] = [];
  let seenInWindow = 0;
  const connectionsTotal = new Counter({ name: 'herald_connections_total', help: 'Connections accepted, by transport', labelNames: ['transport'], registers: [registry] });
  const published = new Counter({ name: 'herald_messages_published_total', help: 'Room messages published through this replica, by source', labelNames: ['source'], registers: [registry] });
  const delivered = new Counter({ name: 'herald_messages_delivered_total', help: 'Messages handed to local sockets (one per recipient)', registers: [registry] });
  const latency = new Histogram({
    name: 'herald_fanout_latency_seconds',
    help: 'Publish time to hand-off to local sockets, per broadcast',
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const busFailures = new Counter({ name: 'herald_bus_publish_failures_total', help: 'Broadcasts that could not be handed to Redis (local delivery still happened)', registers: [registry] });
  const linkDrops = new Counter({ name: 'herald_redis_link_drops_total', help: 'Redis connections dropped for not answering within REDIS_TIMEOUT_SECONDS, by client', labelNames: ['client'], registers: [registry] });
  const unconfirmed = new Counter({ name: 'herald_publish_unconfirmed_total', help: 'Publishes answered 503 publish_timeout: not confirmed by Redis in time, outcome unknown', registers: [registry] });
  const duplicates = new Counter({ name: 'herald_publish_duplicates_total', help: 'History-room publishes whose Idempotency-Key was published before (answered with the first id, not published again)', registers: [registry] });
  const outageDisconnects = new Counter({ name: 'herald_redis_outage_disconnects_total', help: 'Clients closed (to reconnect elsewhere) because Redis was unreachable for REDIS_OUTAGE_CLOSE_SECONDS', registers: [registry] });
  const roomSubscribeFailures = new Counter({
    name: 'herald_room_subscribe_failures_total',
    help: 'Subscribes refused (unavailable) because this replica could not subscribe to the room\'s shard channel, by kind (history, room)',
    labelNames: ['kind'],
    registers: [registry],
  });
  const storedInvalid = new Counter({
    name: 'herald_stored_data_invalid_total',
    help: 'Data read back from Redis that could not be parsed (stored_data_invalid), by what (session, history_entry, stats)',
    labelNames: ['what'],
    registers: [registry],
  });
  const historyRefused = new Counter({
    name: 'herald_history_broadcasts_refused_total',
    help: 'Broadcasts into history rooms from outside herald (@socket.io/redis-emitter) not delivered there, per room: they bypass history',
    registers: [registry],
  });
  const authFailures = new Counter({ name: 'herald_auth_failures_total', help: 'Refused connections, by error code', labelNames: ['code'], registers: [registry] });
  const conflated = new Counter({ name: 'herald_conflated_messages_total', help: 'Messages of conflated rooms (CONFLATE_ROOMS) never written to a slow connection: replaced by a newer one of their room while held', registers: [registry] });
  const conflationHeld = new Gauge({ name: 'herald_conflation_held_messages', help: 'Messages held for slow connections in conflated rooms, written when they drain (at most one per connection and room)', registers: [registry] });
  const slowDisconnects = new Counter({ name: 'herald_slow_consumer_disconnects_total', help: 'Connections closed for passing the outbound buffer bound (SLOW_CLIENT_MAX_BYTES)', registers: [registry] });
  const refusals = new Counter({ name: 'herald_connections_refused_total', help: 'Handshakes refused before they became connections, by reason (capacity: MAX_CONNECTIONS, 503; overloaded: HANDSHAKE_MAX_LAG_MS, 503; draining, redis_unreachable, origin, rate_limited: 403)', labelNames: ['reason'], registers: [registry] });
  const acceptPauses = new Counter({ name: 'herald_accept_pauses_total', help: 'Times the listen socket was closed because file descriptors were nearly gone (uWS)', registers: [registry] });
  const accepting = new Gauge({ name: 'herald_accepting', help: '1 while the listen socket accepts connections, 0 while the descriptor backstop holds it closed', registers: [registry] });
  accepting.set(1);
  const maxConnections = new Gauge({ name: 'herald_connections_max', help: 'MAX_CONNECTIONS in force (absent: no cap)', registers: [registry] });
  const refills = new Counter({ name: 'herald_history_refills_total', help: 'History rooms refilled from their stream after the bus reconnected', registers: [registry] });
  const refilled = new Counter({ name: 'herald_history_refilled_messages_total', help: 'Messages delivered by refills (lost by pub/sub, found in the stream)', registers: [registry] });
  const resets = new Counter({ name: 'herald_history_resets_total', help: 'History rooms whose members were told to reload (herald:reset), by code', labelNames: ['code'], registers: [registry] });
  const deltaMessages = new Counter({
    name: 'herald_delta_messages_total',
    help: 'Messages of delta rooms sent to this replica\'s delta subscribers (one per message, whatever the number of subscribers), by kind: delta, or whole because it was the first here (first) or its delta was not smaller (larger)',
    labelNames: ['kind'],
    registers: [registry],
  });
  const deltaPayloads = new Gauge({ name: 'herald_delta_held_payloads', help: 'Previous payloads delta rooms hold on this replica (one per room with delta subscribers here)', registers: [registry] });
  const deltaBytes = new Gauge({ name: 'herald_delta_held_bytes', help: 'Bytes of the previous payloads delta rooms hold on this replica (each at most PUBLISH_MAX_BYTES)', registers: [registry] });
  const deltaSaved = new Counter({ name: 'herald_delta_bytes_saved_total', help: 'Bytes of JSON payload not sent thanks to deltas: (whole - delta) per delta subscriber reached', registers: [registry] });
  const roomCreations = new Counter({
    name: 'herald_history_room_creations_total',
    help: 'New history rooms (streams) client subscribes needed: created, or refused past HISTORY_NEW_ROOMS_PER_IP',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const controlCommands = new Counter({ name: 'herald_control_commands_total', help: 'Control API commands this replica answered, by command and outcome (complete, partial, failed)', labelNames: ['command', 'outcome'], registers: [registry] });
  const controlApplied = new Counter({ name: 'herald_control_connections_total', help: 'Local connections a control command acted on, by command', labelNames: ['command'], registers: [registry] });
  const revocationCheckFailures = new Counter({ name: 'herald_revocation_check_failures_total', help: 'Token revocation checks that could not reach Redis (the token was judged on what this replica knows)', registers: [registry] });
  const recoveries = new Counter({ name: 'herald_session_recovery_total', help: 'Connection state recovery: sessions saved, save_failed or evicted, and returning connections recovered, partial, not_found, lookup_failed, refused or rate_limited', labelNames: ['outcome'], registers: [registry] });
  const webhookAttempts = new Counter({ name: 'herald_webhooks_total', help: 'Webhook delivery attempts, by type and outcome (sent: 2xx; failed; retried: scheduled again)', labelNames: ['type', 'outcome'], registers: [registry] });
  const webhookDrops = new Counter({ name: 'herald_webhooks_dropped_total', help: 'Webhooks given up, by type and reason (queue_full, expired, shutdown)', labelNames: ['type', 'reason'], registers: [registry] });
  const webhookLatency = new Histogram({ name: 'herald_webhook_latency_seconds', help: 'Webhook request to answer (or timeout)', buckets: BACKEND_BUCKETS, registers: [registry] });
  const proxyAnswers = new Counter({ name: 'herald_proxy_requests_total', help: 'Subscribe and connect proxy decisions, by proxy and outcome (allow, deny, unavailable, busy, cached)', labelNames: ['proxy', 'outcome'], registers: [registry] });
  const proxyLatency = new Histogram({ name: 'herald_proxy_latency_seconds', help: 'Proxy request to answer (or timeout), by proxy', labelNames: ['proxy'], buckets: BACKEND_BUCKETS, registers: [registry] });
  const ingested = new Counter({ name: 'herald_ingest_entries_total', help: 'Ingest entries by source and outcome', labelNames: ['source', 'outcome'], registers: [registry] });
  const ingestLag = new Histogram({
    name: 'herald_ingest_lag_seconds',
    help: 'Entry creation (stream id time, AMQP timestamp) to broadcast',
    labelNames: ['source'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
    registers: [registry],
  });
  return {
    registry,
    connectionOpened(transport) {
      s.connections++;
      s.connectionsTotal++;
      connectionsTotal.inc({ transport });
    },
    connectionClosed() {
      s.connections--;
    },
    published(rooms, source) {
      s.published += rooms;
      published.inc({ source }, rooms);
    },
    delivered(recipients, latencySeconds) {
      s.delivered += recipients;
      delivered.inc(recipients);
      if (latencySeconds !== undefined) {
        latency.observe(latencySeconds);
        // Reservoir sample: the status page's p99 without keeping every observation.
        seenInWindow++;
        if (window.length < LATENCY_WINDOW) window.push(latencySeconds);
        else {
          const i = Math.floor(Math.random() * seenInWindow);
          if (i < LATENCY_WINDOW) window[i] = latencySeconds;
        }
      }
    },
    busPublishFailed() {
      s.busPublishFailures++;
      busFailures.inc();
    },
    redisLinkDropped(client) {
      linkDrops.inc({ client });
    },
    publishUnconfirmed() {
      unconfirmed.inc();
    },
    publishDuplicate() {
      duplicates.inc();
    },
    outageDisconnected(clients) {
      outageDisconnects.inc(clients);
    },
    connectionRefused(reason) {
      s.connectionsRefused[reason] = (s.connectionsRefused[reason] ?? 0) + 1;
      refusals.inc({ reason });
    },
    acceptingChanged(on) {
      accepting.set(on ? 1 : 0);
      if (!on) acceptPauses.inc();
    },
    setMaxConnections(max) {
      if (max === undefined) maxConnections.reset();
      else maxConnections.set(max);
    },
    roomSubscribeFailed(kind) {
      roomSubscribeFailures.inc({ kind });
    },
    storedDataInvalid(what) {
      storedInvalid.inc({ what });
    },
    historyBroadcastRefused(rooms) {
      historyRefused.inc(rooms);
    },
    authFailed(code) {
      s.authFailures[code] = (s.authFailures[code] ?? 0) + 1;
      authFailures.inc({ code });
    },
    slowConsumerDisconnected() {
      s.slowConsumerDisconnects++;
      slowDisconnects.inc();
    },
    messageConflated() {
      s.conflatedMessages++;
      conflated.inc();
    },
    conflationHeld(change) {
      s.conflationHeld += change;
      conflationHeld.inc(change);
    },
    historyRefilled(messages) {
      refills.inc();
      refilled.inc(messages);
    },
    historyReset(code) {
      resets.inc({ code });
    },
    deltaSent(kind, recipients, saved) {
      deltaMessages.inc({ kind });
      if (saved > 0) deltaSaved.inc(saved * recipients);
    },
    deltaHeld(payloads, bytes) {
      deltaPayloads.set(payloads);
      deltaBytes.set(bytes);
    },
    historyRoomCreation(outcome) {
      roomCreations.inc({ outcome });
    },
    controlCommand(command, outcome) {
      controlCommands.inc({ command, outcome });
    },
    controlApplied(command, connections) {
      controlApplied.inc({ command }, connections);
    },
    revocationCheckFailed() {
      revocationCheckFailures.inc();
    },
    sessionRecovery(outcome) {
      if (outcome === 'save_failed') s.sessionsNotSaved++;
      recoveries.inc({ outcome });
    },
    webhookAttempt(type, outcome, latencySeconds) {
      webhookAttempts.inc({ type, outcome });
      if (latencySeconds !== undefined) webhookLatency.observe(latencySeconds);
    },
    webhookDropped(type, reason) {
      webhookDrops.inc({ type, reason });
    },
    proxyAnswered(proxy, outcome, latencySeconds) {
      proxyAnswers.inc({ proxy, outcome });
      if (latencySeconds !== undefined) proxyLatency.observe({ proxy }, latencySeconds);
    },
    ingested(source, outcome, lagSeconds) {
      const k = `${source}:${outcome}`;
      s.ingest[k] = (s.ingest[k] ?? 0) + 1;
      ingested.inc({ source, outcome });
      if (lagSeconds !== undefined) ingestLag.observe({ source }, Math.max(0, lagSeconds));
    },
    snapshot: () => ({ ...s, authFailures: { ...s.authFailures }, connectionsRefused: { ...s.connectionsRefused }, ingest: { ...s.ingest } }),
    takeLatencyWindow() {
      const w = window;
      window = [];
      seenInWindow = 0;
      return w;
    },
  };
}
