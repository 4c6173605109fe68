import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { LOG_LEVELS, type LogLevel } from '../levels.js';
import type { TransportKind, WsCompression } from '../types.js';
import { integer, list, oneOf, parsePublishKey, setting } from '../parse.js';
import { parseClusterNodes, parseSocketioPath, SOCKETIO_PATH } from '../addresses.js';
import { SENTINEL_SETTINGS } from './sentinel.js';
import { REDIS_LINK_SETTINGS } from './redis-link.js';

/** Server, Redis connection, publish API, shutdown, logging, identity of the replica. */
export const CORE_SETTINGS = [
  setting({
    env: 'PORT',
    key: 'port',
    doc: 'TCP port for Socket.IO, the publish API and health checks (0 picks a free port). The port is held alone on both transports: a port another process listens on stops start-up with an error naming PORT.',
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
    env: 'SOCKETIO_PATH',
    key: 'socketioPath',
    doc: 'Path Socket.IO answers on, on both transports, e.g. `/herald/socket.io` behind an ingress that forwards `/herald/` unchanged. Clients pass the same `path` (socket.io-client: `io(url, { path: \'/herald/socket.io\' })`); the status page follows it. A trailing `/` is dropped. Segments of `A-Z a-z 0-9 . _ ~ -`; not `/` alone, and not under `/v1`, where herald\'s HTTP API is.',
    defaultText: SOCKETIO_PATH,
    parse: parseSocketioPath,
  }),
  setting({
    env: 'PING_INTERVAL_MS',
    key: 'pingIntervalMs',
    doc: 'Milliseconds between the pings herald sends each client (Socket.IO `pingInterval`); clients learn it from the handshake. Keep it below the idle timeout of every proxy and load balancer on the way, which otherwise closes quiet connections (60 s on AWS ALB and nginx by default, less on some). It is also the longest a long-polling request is held open. 1000 to 60000.',
    defaultText: '25000',
    parse: integer(1000, 60_000, 25_000),
  }),
  setting({
    env: 'PING_TIMEOUT_MS',
    key: 'pingTimeoutMs',
    doc: 'Milliseconds a client has to answer a ping before herald closes its connection, and that a client waits past `PING_INTERVAL_MS` for the next ping before it reconnects (Socket.IO `pingTimeout`). A dead connection is noticed within `PING_INTERVAL_MS` + `PING_TIMEOUT_MS`. 1000 to 60000.',
    defaultText: '20000',
    parse: integer(1000, 60_000, 20_000),
  }),
  setting({
    env: 'TRANSPORT',
    key: 'transport',
    doc: '`uws` (uWebSockets.js) or `node` (Node http + `ws`). `uws` falls back to `node` with a warning when its native module cannot load.',
    defaultText: 'uws',
    parse: oneOf<TransportKind>(['uws', 'node'], 'uws'),
  }),
  setting({
    env: 'BROADCAST_BATCH_MS',
    key: 'broadcastBatchMs',
    doc: 'uWS transport: a room broadcast made less than this many milliseconds after the previous one waits until then, and goes out with every other broadcast made meanwhile, so a busy replica sends each client several messages per system call. An idle replica adds no delay. Per-connection order and room membership at publish time are kept. `0`: every broadcast goes out at once.',
    defaultText: '1',
    parse: integer(0, 100, 1),
  }),
  setting({
    env: 'WS_COMPRESSION',
    key: 'wsCompression',
    doc: '`off`, `on` or `context`. `on`: WebSocket clients that offer permessage-deflate (browsers, socket.io-client) get it, and every message of 128 bytes or more is deflated on its own, without context kept between messages (uWS: its shared compressor, no memory per connection; node transport: `ws` without context takeover). `context`: the same clients and threshold, but each connection keeps its own sliding window from one message to the next (server context takeover), so what repeats across messages (room names, meta, ids, unchanged fields) shrinks to a few bytes. Memory per connection, for as long as it lives: uWS, a dedicated compressor (measured about 73 KiB of RSS more than `on`; its window is 512 bytes, so only messages under about 250 bytes, such as delta frames, gain from it); node transport, `ws` with a 4 KiB window and memLevel 4 (about 200 KiB measured, as with `on`). See Compression for the measured bytes and CPU. Client-to-server messages are inflated without context in both modes. Fewer bytes on the wire for more server CPU per delivery (see Compression). A compressed client frame may inflate to `CLIENT_MAX_BYTES` at most; past that the connection is closed, as for a larger uncompressed one.',
    defaultText: 'off',
    parse: (raw): WsCompression => {
      const mode = oneOf(['off', 'on', 'context'] as const, 'off')(raw);
      return mode === 'off' ? false : mode === 'on' ? 'shared' : 'context';
    },
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
    doc: 'Redis Cluster seed nodes, comma-separated, each `host:port` (as redis-cli and ioredis write them; IPv6 as `[::1]:7000`) or `redis://[:password@]host:port` (`rediss://` for TLS, e.g. Azure Cache for Redis with clustering: `rediss://:<access key>@<name>.redis.cache.windows.net:6380`). The first node\'s scheme and password are used for every node. Set instead of `REDIS_URL`.',
    defaultText: '(unset)',
    parse: (raw, env) => {
      const nodes = list(raw);
      if (nodes.length > 0 && env.REDIS_URL) throw new Error('and REDIS_URL are exclusive: set one');
      return Object.freeze(parseClusterNodes(nodes));
    },
  }),
  ...SENTINEL_SETTINGS,
  ...REDIS_LINK_SETTINGS,
  setting({
    env: 'REDIS_KEY_PREFIX',
    key: 'redisKeyPrefix',
    doc: 'Pub/sub channel prefix of the Redis adapter; a backend using `@socket.io/redis-emitter` (rooms without history only) must pass the same `key`.',
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
    env: 'CONTROL_KEYS',
    key: 'controlKeys',
    doc: 'Comma-separated bearer keys for the control API (`/v1/disconnect`, `/v1/subscribe`, `/v1/unsubscribe`, `/v1/revoke`, `/v1/users/:user`), same syntax as `PUBLISH_KEYS`. A key with `rooms=` may only subscribe and unsubscribe within those rooms. Publish keys are refused there (403), and a key may not be in both lists. Unset: loopback callers only, and no one when `NODE_ENV=production`.',
    defaultText: '(unset)',
    parse: (raw, env) => {
      const keys = list(raw).map(parsePublishKey);
      const publishKeys = new Set(list(env.PUBLISH_KEYS).map((entry) => entry.split(/\s+/)[0]));
      if (keys.some((k) => publishKeys.has(k.key))) throw new Error('must not repeat a key from PUBLISH_KEYS: give control its own keys');
      return Object.freeze(keys);
    },
  }),
  setting({
    env: 'CONTROL_TIMEOUT_MS',
    key: 'controlTimeoutMs',
    doc: 'How long a control command waits for the other replicas to report what they did. The answer counts the reports in by then and says how many replicas answered out of how many Redis counts; later reports are dropped, the command itself still runs there.',
    defaultText: '1000',
    parse: integer(50, 30_000, 1000),
  }),
  setting({
    env: 'REVOCATION_TTL_SECONDS',
    key: 'revocationTtlSeconds',
    doc: 'How long a revocation is kept: a user revocation this long after its `issuedBefore`, a token (`jti`) revocation without `expiresAt` this long after it was made. Set it to at least the longest lifetime (`exp` - `iat`) of the tokens you issue.',
    defaultText: '86400',
    parse: integer(60, 366 * 86400, 86400),
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
    doc: 'On SIGTERM/SIGINT, connected clients are disconnected in batches spread over this many seconds, each with `herald:disconnect` `{code: "draining"}` and a recovery offset that works on any replica; then what is left to write to Redis (sessions, presence, room state) gets `REDIS_TIMEOUT_SECONDS` + 3 s, and the process exits 0. It exits 1 only if shutdown takes longer than `DRAIN_DELAY_SECONDS` + this + 2 × `REDIS_TIMEOUT_SECONDS` + 10 s.',
    defaultText: '10',
    parse: integer(0, 3600, 10),
  }),
  setting({
    env: 'DRAIN_DELAY_SECONDS',
    key: 'drainDelaySeconds',
    doc: 'On SIGTERM/SIGINT, `/readyz` turns 503 at once, but for this many seconds the replica still accepts new clients and serves its own; only then does it refuse new handshakes (`draining`) and start the `DRAIN_SECONDS` batches. A balancer that learns of the drain from its health check keeps sending clients (the drained ones reconnecting among them: leastconn prefers the emptying replica) until it has marked the replica down; refused, they wait another backoff step. Set it to the longest that takes: HAProxy `inter` × `fall` plus one `inter` (the shipped config: 1 s × 2 + 1 s = 3, which `compose.yaml` sets). 0 where the platform stops sending before the signal (Kubernetes: the shipped `preStop` sleep).',
    defaultText: '0',
    parse: integer(0, 600, 0),
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
] as const;
