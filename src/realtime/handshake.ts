import type { Socket } from 'socket.io';

/**
 * Socket.IO keeps, for a connection's whole life, the upgrade request it was made from (with
 * uWS, its request and response wrappers) and the handshake: every request header and the
 * `auth` payload, the token included. herald needs neither after connect, so it keeps of the
 * handshake only what the admin UI shows: address, times, `secure`, and `x-forwarded-for`.
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
}
const NO_HEADERS = Object.freeze({});
const NO_QUERY = Object.freeze({});
const NO_AUTH = Object.freeze({});
