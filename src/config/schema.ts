import { hostname } from 'node:os';
import { createPublicKey, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isValidPattern } from '../protocol/patterns.js';

export type TransportKind = 'uws' | 'node';
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** herald's configuration after validation. Frozen; built only by `loadConfig`. */
export interface Config {
  /** TCP port for Socket.IO and HTTP. @default 3000 */
  readonly port: number;
  /** Address to bind. @default "0.0.0.0" */
  readonly host: string;
  /** `uws` (uWebSockets.js) or `node` (http + ws). @default "uws" */
  readonly transport: TransportKind;
  /** Redis URL (redis:// or rediss://). Unset: single node, in-memory adapter. */
  readonly redisUrl: string | undefined;
  /** `classic` (pub/sub, every replica hears everything) or `sharded` (SPUBLISH/SSUBSCRIBE per room). @default "classic" */
  readonly redisMode: 'classic' | 'sharded';
  /** Redis Cluster seed nodes (redis:// or rediss:// URLs); set instead of REDIS_URL. */
  readonly redisClusterNodes: readonly string[];
  /** Channel prefix shared with the redis-adapter and @socket.io/redis-emitter. @default "socket.io" */
  readonly redisKeyPrefix: string;
  /** Bearer keys accepted by the publish and history APIs. Empty: loopback-only publishing. */
  readonly publishKeys: readonly PublishKey[];
  /** Largest publish body in bytes. @default 65536 */
  readonly publishMaxBytes: number;
  /** Seconds over which connected clients are disconnected on SIGTERM. @default 10 */
  readonly drainSeconds: number;
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
  /** Take the client IP from X-Forwarded-For (behind a trusted proxy). @default false */
  readonly trustProxy: boolean;
  /** Seconds an HTTP request (headers and body) may take to arrive. @default 10 */
  readonly httpRequestTimeoutSeconds: number;
  /** Outbound bytes a connection may have queued before messages to it are dropped. @default 1048576 */
  readonly slowClientMaxBytes: number;
  /** Seconds a connection may stay over that bound before it is disconnected. @default 10 */
  readonly slowClientSeconds: number;
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

/** One `HISTORY_ROOMS` entry: `<pattern>[ size=<n>][ ttl=<seconds>]`. */
export interface HistoryRule {
  readonly pattern: string;
  /** Overrides HISTORY_SIZE for rooms of this pattern. */
  readonly size: number | undefined;
  /** Overrides HISTORY_TTL_SECONDS for rooms of this pattern. */
  readonly ttlSeconds: number | undefined;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * One environment variable: its documentation, the default shown in README, and a parser that
 * returns the value or throws a message saying what is allowed.
 */
export interface Setting<K extends keyof Config> {
  readonly env: string;
  readonly key: K;
  readonly doc: string;
  readonly defaultText: string;
  parse(raw: string | undefined, env: Env): Config[K];
}

function setting<K extends keyof Config>(s: Setting<K>): Setting<K> {
  return s;
}

function integer(min: number, max: number, fallback: number) {
  return (raw: string | undefined): number => {
    if (raw === undefined || raw === '') return fallback;
    if (!/^\d+$/.test(raw)) throw new Error(`must be a whole number from ${min} to ${max}, got "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw new Error(`must be from ${min} to ${max}, got ${n}`);
    return n;
  };
}

function oneOf<T extends string>(allowed: readonly T[], fallback: T) {
  return (raw: string | undefined): T => {
    if (raw === undefined || raw === '') return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      throw new Error(`must be one of ${allowed.join(', ')}, got "${raw}"`);
    }
    return raw as T;
  };
}

function list(raw: string | undefined): string[] {
  return (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export const SETTINGS = [
  setting({
    env: 'PORT',
    key: 'port',
    doc: 'TCP port for Socket.IO, the publish API and health checks (0 picks a free port).',
    defaultText: '3000',
    parse: integer(0, 65535, 3000),
  }),
  setting({
    env: 'HOST',
    key: 'host',
    doc: 'Address to bind.',
    defaultText: '0.0.0.0',
    parse: (raw) => (raw === undefined || raw === '' ? '0.0.0.0' : raw),
  }),
  setting({
    env: 'TRANSPORT',
    key: 'transport',
    doc: '`uws` (uWebSockets.js) or `node` (Node http + `ws`). `uws` falls back to `node` with a warning when its native module cannot load.',
    defaultText: 'uws',
    parse: oneOf<TransportKind>(['uws', 'node'], 'uws'),
  }),
  setting({
    env: 'REDIS_URL',
    key: 'redisUrl',
    doc: 'Redis shared by all replicas: `redis://[:password@]host:port[/db]` or `rediss://` for TLS (Azure Cache for Redis: `rediss://:<access key>@<name>.redis.cache.windows.net:6380`). Unset: single node with the in-memory adapter.',
    defaultText: '(unset)',
    parse: (raw) => {
      if (raw === undefined || raw === '') return undefined;
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        throw new Error('must be a URL like redis://host:6379 or rediss://:password@host:6380');
      }
      if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
        throw new Error(`must start with redis:// or rediss://, got "${url.protocol}//"`);
      }
      return raw;
    },
  }),
  setting({
    env: 'REDIS_MODE',
    key: 'redisMode',
    doc: '`classic`: the Redis adapter over pub/sub, every replica receives every broadcast. `sharded`: the sharded adapter over Redis 7 `SPUBLISH`/`SSUBSCRIBE`, a replica subscribes to a room\'s channel only while it has a member there (works on one Redis 7 too). Required with `REDIS_CLUSTER_NODES`.',
    defaultText: 'classic',
    parse: (raw, env) => {
      const mode = oneOf(['classic', 'sharded'] as const, 'classic')(raw);
      if (env.REDIS_CLUSTER_NODES && mode !== 'sharded') throw new Error('must be sharded with REDIS_CLUSTER_NODES');
      return mode;
    },
  }),
  setting({
    env: 'REDIS_CLUSTER_NODES',
    key: 'redisClusterNodes',
    doc: 'Redis Cluster seed nodes, comma-separated `redis://[:password@]host:port` (or `rediss://` for TLS, e.g. Azure Cache for Redis with clustering: `rediss://:<access key>@<name>.redis.cache.windows.net:6380`). Set instead of `REDIS_URL`.',
    defaultText: '(unset)',
    parse: (raw, env) => {
      const nodes = list(raw);
      if (nodes.length > 0 && env.REDIS_URL) throw new Error('and REDIS_URL are exclusive: set one');
      for (const n of nodes) {
        let url: URL | undefined;
        try {
          url = new URL(n);
        } catch {
          url = undefined;
        }
        if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || !url.port) {
          throw new Error(`has "${n}": use redis://host:port or rediss://:password@host:port`);
        }
      }
      return Object.freeze(nodes);
    },
  }),
  setting({
    env: 'REDIS_KEY_PREFIX',
    key: 'redisKeyPrefix',
    doc: 'Pub/sub channel prefix of the Redis adapter; a backend using `@socket.io/redis-emitter` must pass the same `key`.',
    defaultText: 'socket.io',
    parse: (raw) => {
      if (raw === undefined || raw === '') return 'socket.io';
      if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(raw)) {
        throw new Error('must be 1-64 characters of A-Z a-z 0-9 _ . : -');
      }
      return raw;
    },
  }),
  setting({
    env: 'PUBLISH_KEYS',
    key: 'publishKeys',
    doc: 'Comma-separated bearer keys for the publish and history APIs, each optionally limited to rooms: `key1, key2 rooms=scores:*|news:*`. Keys are at least 16 characters. Unset: loopback callers only (refused at start when `NODE_ENV=production`).',
    defaultText: '(unset)',
    parse: (raw, env) => {
      const keys = list(raw).map(parsePublishKey);
      if (keys.length === 0 && env.NODE_ENV === 'production') {
        throw new Error('must be set when NODE_ENV=production (publishing would be loopback-only)');
      }
      return Object.freeze(keys);
    },
  }),
  setting({
    env: 'PUBLISH_MAX_BYTES',
    key: 'publishMaxBytes',
    doc: 'Largest `POST /v1/publish` body in bytes; larger bodies get 413 `payload_too_large`.',
    defaultText: '65536',
    parse: integer(1, 16 * 1024 * 1024, 64 * 1024),
  }),
  setting({
    env: 'DRAIN_SECONDS',
    key: 'drainSeconds',
    doc: 'On SIGTERM/SIGINT, connected clients are disconnected in batches spread over this many seconds, then the process exits 0.',
    defaultText: '10',
    parse: integer(0, 3600, 10),
  }),
  setting({
    env: 'LOG_LEVEL',
    key: 'logLevel',
    doc: `Log level: ${LOG_LEVELS.join(', ')}.`,
    defaultText: 'info',
    parse: oneOf<LogLevel>(LOG_LEVELS, 'info'),
  }),
  setting({
    env: 'NODE_ENV',
    key: 'production',
    doc: '`production` refuses unsafe defaults (no publish keys).',
    defaultText: '(unset)',
    parse: (raw) => raw === 'production',
  }),
  setting({
    env: 'REPLICA_ID',
    key: 'replicaId',
    doc: 'Name of this replica in logs, `/healthz`, `/readyz`, `herald:hello` and the `x-herald-replica` header. Keep it stable across restarts of the same replica (a pod name, a container hostname): presence then replaces a restarted replica\'s members at once instead of after `PRESENCE_TTL_SECONDS`. Two live replicas must never share one.',
    defaultText: '`<hostname>-<PORT>` (random suffix when `PORT=0`)',
    parse: (raw, env) => {
      if (raw === undefined || raw === '') {
        const port = env.PORT === undefined || env.PORT === '' ? '3000' : env.PORT;
        const suffix = port === '0' ? randomBytes(3).toString('hex') : port;
        return `${hostname()}-${suffix}`.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 64);
      }
      if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(raw)) throw new Error('must be 1-64 characters of A-Z a-z 0-9 _ . : -');
      return raw;
    },
  }),
  setting({
    env: 'HISTORY_ROOMS',
    key: 'historyRooms',
    doc: 'Comma-separated room patterns (`*` matches anything) whose rooms keep a history for recovery, each optionally followed by its own ` size=<n>` and ` ttl=<seconds>`, e.g. `scores:* size=200 ttl=120, chat:*`.',
    defaultText: '(unset)',
    parse: (raw) => Object.freeze(list(raw).map(parseHistoryRule)),
  }),
  setting({
    env: 'HISTORY_SIZE',
    key: 'historySize',
    doc: 'Entries a history room keeps (trimmed approximately, as Redis `XADD MAXLEN ~` does), unless its pattern says otherwise.',
    defaultText: '1000',
    parse: integer(1, 1_000_000, 1000),
  }),
  setting({
    env: 'HISTORY_TTL_SECONDS',
    key: 'historyTtlSeconds',
    doc: 'Seconds a history room keeps its entries after its last publish, unless its pattern says otherwise.',
    defaultText: '600',
    parse: integer(1, 30 * 24 * 3600, 600),
  }),
  setting({
    env: 'JWT_SECRET',
    key: 'jwtSecret',
    doc: 'Shared secret (at least 32 characters) for HS256/HS384/HS512 connection tokens. Set at most one of `JWT_SECRET`, `JWT_PUBLIC_KEY`, `JWKS_URL`; with none, clients connect anonymously (refused at start when `NODE_ENV=production`).',
    defaultText: '(unset)',
    parse: (raw, env) => {
      const sources = ['JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWKS_URL'].filter((k) => env[k]);
      if (sources.length > 1) throw new Error(`conflicts with ${sources.filter((k) => k !== 'JWT_SECRET').join(', ')}: set only one token key source`);
      if (sources.length === 0 && env.NODE_ENV === 'production') {
        throw new Error('(or JWT_PUBLIC_KEY or JWKS_URL) must be set when NODE_ENV=production: anonymous-only is for development');
      }
      if (raw && raw.length < 32) throw new Error('must be at least 32 characters long');
      return raw || undefined;
    },
  }),
  setting({
    env: 'JWT_PUBLIC_KEY',
    key: 'jwtPublicKey',
    doc: 'PEM public key (RSA for RS256, EC P-256 for ES256) for connection tokens, or the path of a PEM file.',
    defaultText: '(unset)',
    parse: (raw) => {
      if (!raw) return undefined;
      const pem = raw.includes('-----BEGIN') ? raw.replace(/\\n/g, '\n') : readPem(raw);
      try {
        const key = createPublicKey(pem);
        if (key.asymmetricKeyType !== 'rsa' && !(key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')) {
          throw new Error(`is a ${key.asymmetricKeyType} key; use RSA (RS256) or EC P-256 (ES256)`);
        }
      } catch (err) {
        throw new Error(err instanceof Error && err.message.startsWith('is a') ? err.message : 'is not a PEM public key');
      }
      return pem;
    },
  }),
  setting({
    env: 'JWKS_URL',
    key: 'jwksUrl',
    doc: 'JWKS of the token issuer: an `https://` URL (fetched and cached) or a `file:` URL.',
    defaultText: '(unset)',
    parse: (raw) => {
      if (!raw) return undefined;
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        throw new Error('must be an http(s):// or file: URL');
      }
      if (!['https:', 'http:', 'file:'].includes(url.protocol)) throw new Error('must be an http(s):// or file: URL');
      return url;
    },
  }),
  setting({
    env: 'JWT_ISSUER',
    key: 'jwtIssuer',
    doc: 'When set, tokens must carry this `iss`.',
    defaultText: '(unset)',
    parse: (raw) => raw || undefined,
  }),
  setting({
    env: 'JWT_AUDIENCE',
    key: 'jwtAudience',
    doc: 'When set, tokens must carry this `aud`.',
    defaultText: '(unset)',
    parse: (raw) => raw || undefined,
  }),
  setting({
    env: 'JWT_CLOCK_SKEW_SECONDS',
    key: 'jwtClockSkewSeconds',
    doc: 'Allowance for clocks that disagree: a token is valid until `exp` plus this, at connect and for the expiry disconnect.',
    defaultText: '30',
    parse: integer(0, 300, 30),
  }),
  setting({
    env: 'PUBLIC_ROOMS',
    key: 'publicRooms',
    doc: 'Comma-separated room patterns any connected client may subscribe to (e.g. `scores:*`); other rooms need a token whose `rooms` claim matches. `user:<id>` rooms are never public.',
    defaultText: '`*` without auth; none with auth',
    parse: (raw, env) => {
      const patterns = raw === undefined ? (hasAuth(env) ? [] : ['*']) : list(raw);
      const bad = patterns.filter((p) => !isValidPattern(p));
      if (bad.length > 0) throw new Error(`has bad pattern(s) ${bad.join(', ')}: use room characters and *`);
      return Object.freeze(patterns);
    },
  }),
  setting({
    env: 'ALLOW_ANONYMOUS',
    key: 'allowAnonymous',
    doc: 'Whether clients without a token may connect (to public rooms only).',
    defaultText: '`true` without auth; `false` with auth',
    parse: (raw, env) => {
      if (raw === undefined || raw === '') return !hasAuth(env);
      if (raw !== 'true' && raw !== 'false') throw new Error(`must be true or false, got "${raw}"`);
      if (raw === 'false' && !hasAuth(env)) throw new Error('cannot be false without JWT_SECRET, JWT_PUBLIC_KEY or JWKS_URL');
      return raw === 'true';
    },
  }),
  setting({
    env: 'CORS_ORIGINS',
    key: 'corsOrigins',
    doc: 'Comma-separated browser origins allowed to connect (`https://app.example.com`), or `*`. Checked on every Socket.IO handshake that carries an `Origin` (WebSocket too).',
    defaultText: '`*`; none when `NODE_ENV=production`',
    parse: (raw, env) => {
      const origins = raw === undefined ? (env.NODE_ENV === 'production' ? [] : ['*']) : list(raw);
      for (const o of origins) {
        if (o === '*') continue;
        let url: URL | undefined;
        try {
          url = new URL(o);
        } catch {
          url = undefined;
        }
        if (!url || url.origin !== o) throw new Error(`has "${o}", which is not an origin like https://app.example.com`);
      }
      return Object.freeze(origins);
    },
  }),
  setting({
    env: 'PRESENCE_ROOMS',
    key: 'presenceRooms',
    doc: 'Comma-separated room patterns with cluster-wide presence (who is subscribed), each optionally followed by ` events` to send `herald:join`/`herald:leave` to the room, e.g. `chat:* events, lobby`.',
    defaultText: '(unset)',
    parse: (raw) =>
      Object.freeze(
        list(raw).map((entry) => {
          const [pattern, ...options] = entry.split(/\s+/);
          if (!pattern || !isValidPattern(pattern)) throw new Error(`has a bad pattern "${pattern}": use room characters and *`);
          if (options.some((o) => o !== 'events')) throw new Error(`has a bad option in "${entry}": the only option is events`);
          return Object.freeze({ pattern, events: options.includes('events') });
        }),
      ),
  }),
  setting({
    env: 'PRESENCE_TTL_SECONDS',
    key: 'presenceTtlSeconds',
    doc: 'A replica refreshes its presence heartbeat every third of this; when it stops (crash), its members drop out of presence within this many seconds.',
    defaultText: '30',
    parse: integer(3, 3600, 30),
  }),
  setting({
    env: 'MAX_SUBSCRIPTIONS',
    key: 'maxSubscriptions',
    doc: 'Rooms one connection may be subscribed to at once (its own `user:` room not counted); beyond it `subscribe` acks `too_many_subscriptions`.',
    defaultText: '100',
    parse: integer(1, 100_000, 100),
  }),
  setting({
    env: 'CLIENT_RATE',
    key: 'clientRate',
    doc: 'Events per second a connection may send, sustained (token bucket). Over it: an error ack `rate_limited`; if a connection keeps going for as many refusals again as its burst, it is disconnected with `herald:disconnect {code: "rate_limited"}`.',
    defaultText: '20',
    parse: integer(1, 100_000, 20),
  }),
  setting({
    env: 'CLIENT_BURST',
    key: 'clientBurst',
    doc: 'Events a connection may send in a burst.',
    defaultText: '60',
    parse: integer(1, 100_000, 60),
  }),
  setting({
    env: 'CLIENT_MAX_BYTES',
    key: 'clientMaxBytes',
    doc: 'Largest message a client may send (Socket.IO `maxHttpBufferSize`, uWS `maxPayloadLength`); a larger WebSocket frame closes the connection (1009 on the node transport).',
    defaultText: '65536',
    parse: integer(1024, 16 * 1024 * 1024, 64 * 1024),
  }),
  setting({
    env: 'CONNECT_RATE_PER_IP',
    key: 'connectRatePerIp',
    doc: 'New Socket.IO connections per second from one client IP, sustained; over it the handshake is refused (`rate_limited`).',
    defaultText: '20',
    parse: integer(1, 100_000, 20),
  }),
  setting({
    env: 'CONNECT_BURST_PER_IP',
    key: 'connectBurstPerIp',
    doc: 'New connections from one client IP in a burst (a reconnect avalanche behind one NAT).',
    defaultText: '100',
    parse: integer(1, 1_000_000, 100),
  }),
  setting({
    env: 'TRUST_PROXY',
    key: 'trustProxy',
    doc: 'Take the client IP for per-IP limits from the first `X-Forwarded-For` address. Only behind a proxy that sets it.',
    defaultText: 'false',
    parse: (raw) => {
      if (raw === undefined || raw === '' || raw === 'false') return false;
      if (raw === 'true') return true;
      throw new Error(`must be true or false, got "${raw}"`);
    },
  }),
  setting({
    env: 'HTTP_REQUEST_TIMEOUT_SECONDS',
    key: 'httpRequestTimeoutSeconds',
    doc: 'Seconds an HTTP request (headers and body) may take to arrive; slower ones get 408 and are closed.',
    defaultText: '10',
    parse: integer(1, 600, 10),
  }),
  setting({
    env: 'SLOW_CLIENT_MAX_BYTES',
    key: 'slowClientMaxBytes',
    doc: 'Outbound bytes one connection may have queued (uWS `maxBackpressure`; Engine.IO + `ws` buffers on the node transport). Over it, messages to that client are dropped and counted (`herald_slow_consumer_drops_total`).',
    defaultText: '1048576',
    parse: integer(16 * 1024, 1024 * 1024 * 1024, 1024 * 1024),
  }),
  setting({
    env: 'SLOW_CLIENT_SECONDS',
    key: 'slowClientSeconds',
    doc: 'A client over `SLOW_CLIENT_MAX_BYTES` this long without a break is disconnected (reason `slow_consumer` in the log, `herald_slow_consumer_disconnects_total`).',
    defaultText: '10',
    parse: integer(1, 3600, 10),
  }),
  setting({
    env: 'METRICS_PORT',
    key: 'metricsPort',
    doc: 'Serve `GET /metrics` on this separate port, without auth (keep it off the public network). Unset: `/metrics` on the main port, behind `PUBLISH_KEYS` like the publish API.',
    defaultText: '(unset)',
    parse: (raw) => (raw === undefined || raw === '' ? undefined : integer(1, 65535, 0)(raw)),
  }),
  setting({
    env: 'STATUS_PAGE',
    key: 'statusPage',
    doc: 'Serve the status page at `/` and its data at `/v1/stats` (per-replica connections, rooms, rates, p99 fan-out latency; no auth). Its live-score demo needs `demo:live-score` public and anonymous clients allowed.',
    defaultText: '`true`; `false` when `NODE_ENV=production`',
    parse: (raw, env) => {
      if (raw === undefined || raw === '') return env.NODE_ENV !== 'production';
      if (raw !== 'true' && raw !== 'false') throw new Error(`must be true or false, got "${raw}"`);
      return raw === 'true';
    },
  }),
  setting({
    env: 'ADMIN_UI_USERNAME',
    key: 'adminUiUsername',
    doc: 'With `ADMIN_UI_PASSWORD_HASH`, enables `@socket.io/admin-ui` on the `/admin` namespace behind this login (add the UI\'s origin, e.g. `https://admin.socket.io`, to `CORS_ORIGINS`).',
    defaultText: '(unset)',
    parse: (raw, env) => {
      if (Boolean(raw) !== Boolean(env.ADMIN_UI_PASSWORD_HASH)) throw new Error('and ADMIN_UI_PASSWORD_HASH must be set together');
      return raw || undefined;
    },
  }),
  setting({
    env: 'ADMIN_UI_PASSWORD_HASH',
    key: 'adminUiPasswordHash',
    doc: 'bcrypt hash of the admin UI password (e.g. `node -e "console.log(require(\'bcryptjs\').hashSync(process.argv[1], 10))" <password>`).',
    defaultText: '(unset)',
    parse: (raw) => {
      if (!raw) return undefined;
      if (!/^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/.test(raw)) throw new Error('must be a bcrypt hash ($2a$10$...)');
      return raw;
    },
  }),
  setting({
    env: 'INGEST_STREAMS',
    key: 'ingestStreams',
    doc: 'Comma-separated Redis Stream keys that all replicas read as one consumer group (needs `REDIS_URL`); each entry is broadcast once, then acknowledged. Entry fields: `room`, `event`, `data` (JSON).',
    defaultText: '(unset)',
    parse: (raw, env) => {
      const streams = list(raw);
      if (streams.length > 0 && !env.REDIS_URL) throw new Error('needs REDIS_URL (a non-cluster Redis)');
      return Object.freeze(streams);
    },
  }),
  setting({
    env: 'INGEST_GROUP',
    key: 'ingestGroup',
    doc: 'Consumer group for `INGEST_STREAMS` (created at the end of each stream if missing); each replica consumes as its `REPLICA_ID`.',
    defaultText: 'herald',
    parse: (raw) => raw || 'herald',
  }),
  setting({
    env: 'INGEST_CLAIM_IDLE_SECONDS',
    key: 'ingestClaimIdleSeconds',
    doc: 'Entries another replica read but did not acknowledge for this long (it crashed) are claimed (`XAUTOCLAIM`) and broadcast.',
    defaultText: '30',
    parse: integer(1, 86_400, 30),
  }),
  setting({
    env: 'INGEST_BATCH',
    key: 'ingestBatch',
    doc: 'Entries read per `XREADGROUP`.',
    defaultText: '100',
    parse: integer(1, 10_000, 100),
  }),
  setting({
    env: 'AMQP_URL',
    key: 'amqpUrl',
    doc: 'RabbitMQ (`amqp://user:pass@host:5672/vhost` or `amqps://`): herald consumes `AMQP_QUEUE` with manual acks and broadcasts each message.',
    defaultText: '(unset)',
    parse: (raw) => {
      if (!raw) return undefined;
      if (!/^amqps?:\/\//.test(raw)) throw new Error('must start with amqp:// or amqps://');
      return raw;
    },
  }),
  setting({
    env: 'AMQP_EXCHANGE',
    key: 'amqpExchange',
    doc: 'Exchange the ingest queue is bound to (declared durable if missing).',
    defaultText: 'herald',
    parse: (raw) => raw || 'herald',
  }),
  setting({
    env: 'AMQP_EXCHANGE_TYPE',
    key: 'amqpExchangeType',
    doc: 'Type of `AMQP_EXCHANGE`: topic, direct, fanout or headers.',
    defaultText: 'topic',
    parse: oneOf(['topic', 'direct', 'fanout', 'headers'], 'topic'),
  }),
  setting({
    env: 'AMQP_QUEUE',
    key: 'amqpQueue',
    doc: 'Durable queue all replicas consume (competing consumers: each message is broadcast by one replica).',
    defaultText: 'herald.ingest',
    parse: (raw) => raw || 'herald.ingest',
  }),
  setting({
    env: 'AMQP_BINDING_KEYS',
    key: 'amqpBindingKeys',
    doc: 'Comma-separated binding keys of the queue to the exchange.',
    defaultText: '#',
    parse: (raw) => Object.freeze(raw ? list(raw) : ['#']),
  }),
  setting({
    env: 'AMQP_PREFETCH',
    key: 'amqpPrefetch',
    doc: 'Unacknowledged messages one replica may hold.',
    defaultText: '100',
    parse: integer(1, 65_535, 100),
  }),
] as const;

function hasAuth(env: Env): boolean {
  return Boolean(env.JWT_SECRET || env.JWT_PUBLIC_KEY || env.JWKS_URL);
}

function readPem(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new Error(`is neither a PEM key nor a readable file path ("${path}")`);
  }
}

function parsePublishKey(entry: string): PublishKey {
  const [key, ...options] = entry.split(/\s+/);
  if (!key || key.length < 16) throw new Error('each key must be at least 16 characters long');
  let rooms: string[] | undefined;
  for (const option of options) {
    const m = /^rooms=(.+)$/.exec(option);
    const patterns = m ? m[1]!.split('|') : [];
    if (!m || patterns.some((p) => !isValidPattern(p))) {
      throw new Error(`has a bad option "${option}": use rooms=<pattern>|<pattern>`);
    }
    rooms = patterns;
  }
  return Object.freeze({ key, rooms: rooms && Object.freeze(rooms) });
}

function parseHistoryRule(entry: string): HistoryRule {
  const [pattern, ...options] = entry.split(/\s+/);
  if (!pattern || !isValidPattern(pattern)) {
    throw new Error(`has a bad pattern "${pattern}": use room characters and *`);
  }
  let size: number | undefined;
  let ttlSeconds: number | undefined;
  for (const option of options) {
    const m = /^(size|ttl)=(\d+)$/.exec(option);
    if (!m || Number(m[2]) < 1) throw new Error(`has a bad option "${option}" for ${pattern}: use size=<n> or ttl=<seconds>`);
    if (m[1] === 'size') size = Number(m[2]);
    else ttlSeconds = Number(m[2]);
  }
  return Object.freeze({ pattern, size, ttlSeconds });
}
