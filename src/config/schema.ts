import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
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
  /** Channel prefix shared with the redis-adapter and @socket.io/redis-emitter. @default "socket.io" */
  readonly redisKeyPrefix: string;
  /** Bearer keys accepted by the publish API. Empty: loopback-only publishing. */
  readonly publishKeys: readonly string[];
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
    doc: 'Comma-separated bearer keys for `POST /v1/publish`. Unset: publishing only from loopback (refused at start when `NODE_ENV=production`).',
    defaultText: '(unset)',
    parse: (raw, env) => {
      const keys = list(raw);
      const short = keys.filter((k) => k.length < 16);
      if (short.length > 0) throw new Error('each key must be at least 16 characters long');
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
    doc: 'Name of this replica in logs, `/healthz`, `/readyz` and the `x-herald-replica` response header.',
    defaultText: '`<hostname>-<random>`',
    parse: (raw) => {
      if (raw === undefined || raw === '') return `${hostname()}-${randomBytes(3).toString('hex')}`;
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
] as const;

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
