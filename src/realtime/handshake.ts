import type { Socket } from 'socket.io';

/**
 * Socket.IO keeps, for a connection's whole life, the upgrade request it was made from (with
 * uWS, its request and response wrappers) and the handshake: every request header and the
 * `auth` payload, the token included. herald needs neither after connect, so it keeps of the
 * handshake only what the admin UI shows: address, times, `secure`, and `x-forwarded-for`.
 *
 * It also trims the listener arrays the connection was given one entry each in (see
 * `exactArrays`).
 */
export function releaseHandshake(socket: Socket): void {
  (socket.conn as unknown as { request: unknown }).request = undefined;
  const h = socket.handshake;
  const forwarded = h.headers['x-forwarded-for'];
  (socket as { handshake: Socket['handshake'] }).handshake = {
    address: h.address,
    time: h.time,
    issued: h.issued,
    secure: h.secure,
    xdomain: h.xdomain,
    url: '',
    headers: forwarded === undefined ? NO_HEADERS : { 'x-forwarded-for': forwarded },
    query: NO_QUERY,
    auth: NO_AUTH,
  };
  exactArrays(socket);
}
const NO_HEADERS = Object.freeze({});
const NO_QUERY = Object.freeze({});
const NO_AUTH = Object.freeze({});

/**
 * V8 gives an empty array room for 17 entries at its first push (152 bytes), and Socket.IO and
 * Engine.IO push one entry, once, into three arrays each connection keeps for its life: its
 * middlewares (herald's event guard), its transport's cleanup, and its decoder's `decoded`
 * listeners. Each is replaced by a copy of its own size (`slice`), the same entries; the libraries
 * read these fields anew each time, and a later push grows the copy as it would the original.
 */
function exactArrays(socket: Socket): void {
  trim(socket as unknown as Record<string, unknown>, 'fns');
  trim(socket.conn as unknown as Record<string, unknown>, 'cleanupFn');
  const decoder = (socket.client as unknown as { decoder?: { _callbacks?: Record<string, unknown> } }).decoder;
  if (decoder?._callbacks) trim(decoder._callbacks, '$decoded');
}

function trim(o: Record<string, unknown>, key: string): void {
  const a = o[key];
  if (Array.isArray(a)) o[key] = a.slice();
}
