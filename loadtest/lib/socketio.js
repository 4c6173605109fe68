// Engine.IO v4 / Socket.IO v5 over a raw WebSocket, as both the k6 scripts and the Node harness
// speak it. Pure functions, no I/O and no runtime APIs, so k6 (goja) and Node run the same code:
// a protocol mistake here shows up in the harness runs of `npm test`.
//
// Wire sequence: open `ws(s)://host/socket.io/?EIO=4&transport=websocket` → receive `0{"sid",…}` →
// send `40` (+ JSON auth) → receive `40{"sid"}` or `44{…}` (refused) → events `42[...]`, acks
// `43<id>[...]` → answer each server ping `2` with `3`.
//
// Connection state recovery (Socket.IO 4.6+, herald's CONNECTION_RECOVERY_SECONDS): the CONNECT
// reply is `40{"sid","pid"}` and every event ends with one more string argument, its offset
// (`42["event",data,meta,"<epoch>.<n>"]`). A client that reconnects sends `{pid, offset}` (the last
// offset it received) in its CONNECT auth; the reply carries the same pid when the session was
// restored, another one when it was not.

/** The WebSocket URL for an http(s) base URL. */
export function socketUrl(base) {
  return base.replace(/^http/, 'ws').replace(/\/$/, '') + '/socket.io/?EIO=4&transport=websocket';
}

/** Namespace connect, with an optional handshake auth payload (e.g. {token}). */
export function connectFrame(auth) {
  return auth ? '40' + JSON.stringify(auth) : '40';
}

/** An event `[name, ...args]`, with an ack id when an answer is wanted. */
export function eventFrame(name, args, ackId) {
  return '42' + (ackId === undefined ? '' : String(ackId)) + JSON.stringify([name].concat(args || []));
}

export const PONG = '3';

/**
 * Classifies one text frame:
 * { type: 'open', sid, pingInterval } | { type: 'ping' } | { type: 'connected', sid, pid } |
 * { type: 'refused', error } | { type: 'event', name, args } | { type: 'ack', id, args } |
 * { type: 'disconnect' } | { type: 'close' } | { type: 'other', frame }
 */
export function parseFrame(frame) {
  const eio = frame.charAt(0);
  if (eio === '2') return { type: 'ping' };
  if (eio === '0') {
    const o = JSON.parse(frame.slice(1));
    return { type: 'open', sid: o.sid, pingInterval: o.pingInterval };
  }
  if (eio === '1') return { type: 'close' };
  if (eio !== '4') return { type: 'other', frame: frame };
  const sio = frame.charAt(1);
  if (sio === '0') {
    const o = JSON.parse(frame.slice(2) || '{}');
    // pid: the private session id, only when the server has connection state recovery on.
    return { type: 'connected', sid: o.sid, pid: o.pid };
  }
  if (sio === '4') return { type: 'refused', error: JSON.parse(frame.slice(2) || '{}') };
  if (sio === '1') return { type: 'disconnect' };
  if (sio === '2' || sio === '3') {
    let i = 2;
    while (i < frame.length && frame.charCodeAt(i) >= 48 && frame.charCodeAt(i) <= 57) i++;
    const id = i > 2 ? Number(frame.slice(2, i)) : undefined;
    const payload = JSON.parse(frame.slice(i));
    if (sio === '3') return { type: 'ack', id: id, args: payload };
    return { type: 'event', name: payload[0], args: payload.slice(1), ackId: id };
  }
  return { type: 'other', frame: frame };
}

/**
 * The recovery offset of an event's arguments (`parseFrame(...).args`): its last argument when that
 * is a string, as socket.io-client takes it; undefined otherwise (recovery off).
 */
export function eventOffset(args) {
  const last = args.length > 0 ? args[args.length - 1] : undefined;
  return typeof last === 'string' ? last : undefined;
}

/** True for a frame that carries an event, without parsing it (the cheap path for counting). */
export function isEventFrame(frame) {
  return frame.charCodeAt(0) === 52 && frame.charCodeAt(1) === 50;
}
