/** Addresses herald answers on and connects to, as its settings write them. */
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
