/** Addresses herald answers on and connects to, as its settings write them. */
import { isIPv6 } from 'node:net';

/** Socket.IO's own path, the default of `SOCKETIO_PATH`. */
export const SOCKETIO_PATH = '/socket.io';

/** Path segments that need no percent-encoding anywhere (RFC 3986 unreserved characters). */
const PATH_SEGMENT = /^[A-Za-z0-9._~-]+$/;

/**
 * `SOCKETIO_PATH`: where Engine.IO answers, without its trailing slash (Socket.IO adds one). Not
 * `/` alone, which would take every request, and not under `/v1`: the node transport hands
 * Engine.IO every URL that starts with `<path>/`, herald's HTTP API included.
 */
export function parseSocketioPath(raw: string | undefined): string {
  if (raw === undefined || raw === '') return SOCKETIO_PATH;
  if (!raw.startsWith('/')) throw new Error(`must start with /, got "${raw}" (e.g. /herald/socket.io)`);
  const path = raw.endsWith('/') ? raw.slice(0, -1) : raw;
  if (path === '') throw new Error('must not be / alone: Socket.IO would answer every path, herald\'s own routes too');
  const segments = path.slice(1).split('/');
  if (segments.some((s) => !PATH_SEGMENT.test(s) || s === '.' || s === '..')) {
    throw new Error(`must be segments of A-Z a-z 0-9 . _ ~ - joined by single slashes, got "${raw}"`);
  }
  if (segments[0] === 'v1') throw new Error(`must not be under /v1, where herald's HTTP API lives, got "${raw}"`);
  return path;
}

/** A server's host and port, as ioredis takes them (an IPv6 host without its brackets). */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Host names as DNS, Docker and Kubernetes hand them out (compose service names may carry `_`). */
const HOST_NAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;

/**
 * `host:port` as redis-cli, ioredis and Sentinel's own configuration write a server: a host name,
 * an IPv4 address, or an IPv6 address in brackets (`[::1]:26379`). Without a port, `defaultPort`
 * when given. Undefined for anything else, so the caller can say what it expected.
 */
export function parseHostPort(entry: string, defaultPort?: number): HostPort | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(entry);
  if (!m) return undefined;
  const host = m[1] ?? m[2]!;
  if (m[1] !== undefined ? !isIPv6(host) : !HOST_NAME.test(host)) return undefined;
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  if (port === undefined || port < 1 || port > 65535) return undefined;
  return { host, port };
}

/** `host:port` back as a URL authority: IPv6 hosts in brackets. */
export function formatHostPort({ host, port }: HostPort): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** A URL's password, if any, hidden before the entry is echoed in an error. */
function redact(entry: string): string {
  return entry.replace(/\/\/[^@/]*@/, '//***@');
}

/**
 * `REDIS_CLUSTER_NODES`: each entry `host:port` (what redis-cli `--cluster` and ioredis take) or
 * a `redis://` / `rediss://` URL with a port. Returned as URLs, `host:port` as `redis://host:port`.
 * The client takes TLS and credentials from the first node for all of them (a cluster has one
 * password and one TLS setting), so a later URL that says otherwise is a mistake, not a choice.
 */
export function parseClusterNodes(entries: readonly string[]): string[] {
  const urls = entries.map((entry) => {
    const url = clusterNodeUrl(entry);
    if (!url) throw new Error(`has "${redact(entry)}": use host:port, redis://host:port or rediss://:password@host:port`);
    return { entry, url };
  });
  const first = urls[0]?.url;
  for (const { entry, url } of urls.slice(1)) {
    if (!entry.includes('://') || !first) continue;
    if (url.protocol !== first.protocol || url.username !== first.username || url.password !== first.password) {
      throw new Error(
        `has "${redact(entry)}" with another scheme or password than the first node, whose are used for every node: write them on the first node only, or the same on each`,
      );
    }
  }
  return urls.map(({ entry, url }) => (entry.includes('://') ? entry : url.href));
}

function clusterNodeUrl(entry: string): URL | undefined {
  if (!entry.includes('://')) {
    const node = parseHostPort(entry);
    return node && new URL(`redis://${formatHostPort(node)}`);
  }
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return undefined;
  // A cluster node is a server: a port, and no database but 0, no query.
  if (!url.port || !url.hostname || !['', '/', '/0'].includes(url.pathname) || url.search || url.hash) return undefined;
  return url;
}

/** Sentinel's own port, where `REDIS_SENTINELS` names none. */
export const SENTINEL_PORT = 26379;

/** `REDIS_SENTINELS`: `host[:port]` entries, 26379 where no port is given. */
export function parseSentinels(entries: readonly string[]): HostPort[] {
  return entries.map((entry) => {
    const sentinel = parseHostPort(entry, SENTINEL_PORT);
    if (!sentinel) {
      const hint = entry.includes('://') ? ' (Sentinel addresses, not URLs)' : '';
      throw new Error(`has "${redact(entry)}": use host:port of each Sentinel, e.g. 10.0.0.5:${SENTINEL_PORT}${hint}`);
    }
    return sentinel;
  });
}
