/**
 * The shapes of herald's configuration, apart from the settings that fill them, so that the
 * settings and their parsers can use them without importing the table that imports them.
 */
import type { HostPort } from './addresses.js';
import type { LogLevel } from './levels.js';
import type { WebhookType } from '../protocol/webhooks.js';

export { LOG_LEVELS, type LogLevel } from './levels.js';

export type TransportKind = 'uws' | 'node';

/**
 * `WS_COMPRESSION`: `false` off; `shared` (`on`) each message deflated on its own, no context kept;
 * `context` each connection keeps its own deflate window between messages (context takeover).
 */
export type WsCompression = false | 'shared' | 'context';

/** herald's configuration after validation. Frozen; built only by `loadConfig`. */
export interface Config {
  /** TCP port for Socket.IO and HTTP. @default 3000 */
  readonly port: number;
  /** Address to bind. @default "0.0.0.0" */
  readonly host: string;
  /** Path Socket.IO answers on, without a trailing slash. @default "/socket.io" */
  readonly socketioPath: string;
  /** Milliseconds between Engine.IO pings (Socket.IO `pingInterval`). @default 25000 */
  readonly pingIntervalMs: number;
  /** Milliseconds a client has to answer a ping (Socket.IO `pingTimeout`). @default 20000 */
  readonly pingTimeoutMs: number;
  /** `uws` (uWebSockets.js) or `node` (http + ws). @default "uws" */
  readonly transport: TransportKind;
  /** uWS: milliseconds a busy replica may hold a room broadcast to batch it with others; 0 = never. @default 1 */
  readonly broadcastBatchMs: number;
  /** permessage-deflate on WebSocket connections (`WS_COMPRESSION`): `false` (off), `shared` (`on`: each message deflated alone) or `context` (a window per connection, kept between messages). @default false */
  readonly wsCompression: WsCompression;
  /** Redis URL (redis:// or rediss://). Unset: single node, in-memory adapter. */
  readonly redisUrl: string | undefined;
  /** `classic` (pub/sub, every replica hears everything) or `sharded` (SPUBLISH/SSUBSCRIBE per room). @default "classic" */
  readonly redisMode: 'classic' | 'sharded';
  /** Redis Cluster seed nodes (redis:// or rediss:// URLs); set instead of REDIS_URL. */
  readonly redisClusterNodes: readonly string[];
  /** Sentinels asked for the master (`REDIS_SENTINELS`); set instead of REDIS_URL and REDIS_CLUSTER_NODES. Empty: no Sentinel. */
  readonly redisSentinels: readonly HostPort[];
  /** Master name the Sentinels monitor; set exactly when `redisSentinels` is. */
  readonly redisSentinelName: string | undefined;
  /** Password of the master and replicas found through the Sentinels (URLs carry their own). */
  readonly redisPassword: string | undefined;
  /** Password the Sentinels themselves ask for. */
  readonly redisSentinelPassword: string | undefined;
  /** Channel prefix shared with the redis-adapter and @socket.io/redis-emitter. @default "socket.io" */
  readonly redisKeyPrefix: string;
  /** Longest wait on Redis: a connection silent this long is dropped; no command waits longer. @default 5 */
  readonly redisTimeoutSeconds: number;
  /** Seconds without Redis after which a replica closes its clients so they move elsewhere; 0 = never. @default 10 */
  readonly redisOutageCloseSeconds: number;
  /** Bearer keys accepted by the publish and history APIs. Empty: loopback-only publishing. */
  readonly publishKeys: readonly PublishKey[];
  /** Bearer keys accepted by the control API. Empty: loopback callers only, none in production. */
  readonly controlKeys: readonly PublishKey[];
  /** Milliseconds a control command waits for the other replicas' reports. @default 1000 */
  readonly controlTimeoutMs: number;
  /** Seconds a dropped connection's session can be recovered (0: off). @default 120 */
  readonly connectionRecoverySeconds: number;
  /** Recovery journal: live deliveries remembered per history room. @default 20000 */
  readonly recoveryJournalRoomEntries: number;
  /** Recovery journal: live deliveries remembered per replica, all rooms together. @default 1000000 */
  readonly recoveryJournalEntries: number;
  /** Recovery journal: messages sent to one connection alone, remembered across its rooms. @default 256 */
  readonly recoverySocketSends: number;
  /** Session restores one client address may start per minute. @default 600 */
  readonly recoveryRestoresPerIp: number;
  /** Saved sessions waiting at once per user or per token jti. @default 100 */
  readonly recoverySessionsPerUser: number;
  readonly recoverySessionsPerAddress: number;
  /** Seconds a revocation is kept (user: after its issuedBefore; jti without expiresAt: after it was made). @default 86400 */
  readonly revocationTtlSeconds: number;
  /** Largest publish body in bytes. @default 65536 */
  readonly publishMaxBytes: number;
  /** Seconds over which connected clients are disconnected on SIGTERM. @default 10 */
  readonly drainSeconds: number;
  /** Seconds between readiness turning 503 on SIGTERM and the drain refusing and closing clients. @default 0 */
  readonly drainDelaySeconds: number;
  /** pino log level. @default "info" */
  readonly logLevel: LogLevel;
  /** `production` makes unsafe defaults fatal. */
  readonly production: boolean;
  /** Identifies this replica in logs, health bodies and the `x-herald-replica` header. */
  readonly replicaId: string;
  /** Rooms that keep a history, first matching pattern wins. Empty: no history. */
  readonly historyRooms: readonly HistoryRule[];
  /** Default entries kept per history room (approximate). @default 1000 */
  readonly historySize: number;
  /** Default seconds a history room keeps its entries after its last publish. @default 600 */
  readonly historyTtlSeconds: number;
  /** New history rooms (streams) one client address may make herald create per minute. @default 100 */
  readonly historyNewRoomsPerIp: number;
  /** HS256/384/512 shared secret for connection tokens. */
  readonly jwtSecret: string | undefined;
  /** RSA or EC public key (PEM) for RS256/ES256 connection tokens. */
  readonly jwtPublicKey: string | undefined;
  /** JWKS for connection tokens: an http(s) URL or a file: URL. */
  readonly jwksUrl: URL | undefined;
  /** Required `iss` claim, when set. */
  readonly jwtIssuer: string | undefined;
  /** Required `aud` claim, when set. */
  readonly jwtAudience: string | undefined;
  /** Allowance for clock differences on `exp`/`nbf`, at connect and for the expiry disconnect. @default 30 */
  readonly jwtClockSkewSeconds: number;
  /** Room patterns any connected client may subscribe to. @default "*" without auth, none with auth */
  readonly publicRooms: readonly string[];
  /** Whether clients without a token may connect (public rooms only). @default true without auth, false with auth */
  readonly allowAnonymous: boolean;
  /** Browser origins allowed to connect; `*` any. @default "*" outside production, none in production */
  readonly corsOrigins: readonly string[];
  /** Rooms one connection may be subscribed to at once. @default 100 */
  readonly maxSubscriptions: number;
  /** Most Engine.IO connections per replica; 0: the soft descriptor limit less a reserve. @default 0 */
  readonly maxConnections: number;
  /** HANDSHAKE_MAX_LAG_MS: new handshakes are refused (503 `overloaded`) while the event loop is this far behind; 0: never. */
  readonly handshakeMaxLagMs: number;
  /** Rooms one Server-Sent Events stream may name. @default 16 */
  readonly sseMaxRooms: number;
  /** Seconds of silence after which a stream gets a heartbeat comment. @default 15 */
  readonly sseHeartbeatSeconds: number;
  /** The `retry:` hint of streams, in ms (at start and on a drain). @default 1000 */
  readonly sseRetryMs: number;
  /** Open streams per client address on one replica. @default 100 */
  readonly sseStreamsPerIp: number;
  /** Events a client may send per second (sustained). @default 20 */
  readonly clientRate: number;
  /** Events a client may send in a burst. @default 60 */
  readonly clientBurst: number;
  /** Largest client message (Socket.IO maxHttpBufferSize, uWS maxPayloadLength). @default 65536 */
  readonly clientMaxBytes: number;
  /** New Socket.IO connections per second from one IP (sustained). @default 20 */
  readonly connectRatePerIp: number;
  /** New connections from one IP in a burst. @default 100 */
  readonly connectBurstPerIp: number;
  /**
   * Proxies in front of herald that append to X-Forwarded-For; per-IP limits count the n-th entry
   * from the right. 0: the peer address. @default 0
   */
  readonly trustProxy: number;
  /** Admin UI password attempts per minute from one client address. @default 10 */
  readonly adminUiLoginsPerIp: number;
  /** Admin UI password attempts per minute on one Engine.IO connection. @default 3 */
  readonly adminUiLoginsPerConnection: number;
  /** Seconds an HTTP request (headers and body) may take to arrive. @default 10 */
  readonly httpRequestTimeoutSeconds: number;
  /** Outbound bytes a connection may have queued; past it, the connection is closed. @default 1048576 */
  readonly slowClientMaxBytes: number;
  /** Room patterns whose messages a slow connection gets conflated: only the newest held until it drains. Empty: none. */
  readonly conflateRooms: readonly string[];
  /** Serve /metrics on this separate port (no auth); unset: on the main port behind the publish keys. */
  readonly metricsPort: number | undefined;
  /** Serve the status page (`/`) and `/v1/stats`. @default true, false when NODE_ENV=production */
  readonly statusPage: boolean;
  /** `@socket.io/admin-ui` login; the UI is enabled only when both are set. */
  readonly adminUiUsername: string | undefined;
  /** bcrypt hash of the admin UI password. */
  readonly adminUiPasswordHash: string | undefined;
  /** Redis Streams read as one consumer group by all replicas. Empty: no stream ingest. */
  readonly ingestStreams: readonly string[];
  /** Consumer group name. @default "herald" */
  readonly ingestGroup: string;
  /** Entries left pending this long by a replica are claimed by another. @default 30 */
  readonly ingestClaimIdleSeconds: number;
  /** Entries read per XREADGROUP. @default 100 */
  readonly ingestBatch: number;
  /** RabbitMQ URL; unset: no AMQP ingest. */
  readonly amqpUrl: string | undefined;
  /** Exchange the ingest queue is bound to. @default "herald" */
  readonly amqpExchange: string;
  /** Its type (created if missing). @default "topic" */
  readonly amqpExchangeType: string;
  /** Durable queue shared by all replicas. @default "herald.ingest" */
  readonly amqpQueue: string;
  /** Binding keys. @default ["#"] */
  readonly amqpBindingKeys: readonly string[];
  /** Unacknowledged messages per replica. @default 100 */
  readonly amqpPrefetch: number;
  /** Rooms with cluster-wide presence, first matching pattern wins. Empty: no presence. */
  readonly presenceRooms: readonly PresenceRule[];
  /** Seconds after which a silent replica's members stop counting. @default 30 */
  readonly presenceTtlSeconds: number;
  /** Where webhooks are POSTed; undefined: no webhooks. */
  readonly webhookUrl: URL | undefined;
  /** Signs webhooks and (when set) proxy requests; at least 16 characters, required with webhookUrl. */
  readonly webhookSecret: string | undefined;
  /** Webhook types sent. @default every type */
  readonly webhookEvents: readonly WebhookType[];
  /** Seconds a room (or presence user) must stay empty cluster-wide before it is announced vacated (left). @default 3 */
  readonly webhookVacateDelaySeconds: number;
  /** Seconds a failing webhook is retried after its first attempt. @default 300 */
  readonly webhookRetrySeconds: number;
  /** Webhooks one replica holds before dropping new ones. @default 10000 */
  readonly webhookQueueSize: number;
  /** Backend asked about subscribes to proxyRooms nothing else allows; undefined: none. */
  readonly subscribeProxyUrl: URL | undefined;
  /** Room patterns the subscribe proxy decides. @default ["*"] with subscribeProxyUrl */
  readonly proxyRooms: readonly string[];
  /** Backend asked about handshakes without a JWT; undefined: none. */
  readonly connectProxyUrl: URL | undefined;
  /** Milliseconds a proxy request may take before the subscribe or connection is refused. @default 2000 */
  readonly proxyTimeoutMs: number;
  /** Seconds an `allow` of the subscribe proxy is remembered per user and room. @default 0 */
  readonly proxyCacheSeconds: number;
  /** Proxy requests in flight at once per replica; more are refused with backend_busy. @default 100 */
  readonly proxyMaxConcurrency: number;
}

/** One `PRESENCE_ROOMS` entry: `<pattern>[ events]`. */
export interface PresenceRule {
  readonly pattern: string;
  /** Send `herald:join` / `herald:leave` to the room's members. */
  readonly events: boolean;
}

/** One `PUBLISH_KEYS` entry: `<key>[ rooms=<pattern>|<pattern>…]`. */
export interface PublishKey {
  readonly key: string;
  /** Room patterns this key may publish to and read; undefined: every room. */
  readonly rooms: readonly string[] | undefined;
}

/** One `HISTORY_ROOMS` entry: `<pattern>[ size=<n>][ ttl=<seconds>][ last=<n>]`. */
export interface HistoryRule {
  readonly pattern: string;
  /** Overrides HISTORY_SIZE for rooms of this pattern. */
  readonly size: number | undefined;
  /** Overrides HISTORY_TTL_SECONDS for rooms of this pattern. */
  readonly ttlSeconds: number | undefined;
  /** Newest messages a subscribe without `since` or `last` receives first (1-100); undefined: none. */
  readonly last: number | undefined;
  /** Subscribers may ask for fossil deltas (` delta`); absent: they may not. */
  readonly delta?: boolean;
}

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * One environment variable: its documentation, the default shown in the docs, and a parser that
 * returns the value or throws a message saying what is allowed.
 */
export interface Setting<K extends keyof Config> {
  readonly env: string;
  readonly key: K;
  readonly doc: string;
  readonly defaultText: string;
  parse(raw: string | undefined, env: Env): Config[K];
}
