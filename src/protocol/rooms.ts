import { HeraldError } from '../errors.js';

/** A room name as clients and publishers write it, e.g. `scores:match-42`. */
export type RoomName = string;

/** Longest accepted room name, in characters. */
export const ROOM_MAX_LENGTH = 128;

// Deliberately narrow: no whitespace, no wildcards (`*` is reserved for authorization patterns),
// no `#` (the Redis adapter uses it as a channel separator).
const ROOM_PATTERN = /^[A-Za-z0-9_\-:.@=]+$/;

/**
 * Socket.IO puts every connection in a room named by its id (20 base64url characters) and the
 * publish API delivers to one connection through it. Names of that shape are reserved: no client
 * may subscribe to one, or another client's id (from `herald:join`) would let it read that
 * connection's messages.
 */
const CONNECTION_ROOM = /^[A-Za-z0-9_-]{20}$/;

/** True for names of the shape Socket.IO gives each connection's own room. */
export function isConnectionRoom(room: RoomName): boolean {
  return CONNECTION_ROOM.test(room);
}

/** Returns `input` as a room name, or throws `invalid_room`. The only place room names are checked. */
export function validateRoom(input: unknown): RoomName {
  if (typeof input !== 'string' || input.length === 0 || input.length > ROOM_MAX_LENGTH || !ROOM_PATTERN.test(input)) {
    throw new HeraldError('invalid_room');
  }
  return input;
}

/** Accepts what a client sends to `subscribe`/`unsubscribe`: a room name or `{room}`. */
export function roomFromClientArg(arg: unknown): RoomName {
  if (typeof arg === 'string') return validateRoom(arg);
  if (arg !== null && typeof arg === 'object' && !Array.isArray(arg)) {
    return validateRoom((arg as { room?: unknown }).room);
  }
  throw new HeraldError('invalid_room', 'Send a room name or {room: "<name>"}.');
}

/**
 * The delivery room of a delta room's subscribers that receive deltas (src/history/delta.ts): a
 * Socket.IO room on the replica only, never a subscription. `#` is not a room character, so no
 * client or publisher can name it; code that walks a socket's rooms as subscriptions skips it.
 */
const DELTA_SUFFIX = '#delta';

export function deltaRoomOf(room: RoomName): string {
  return room + DELTA_SUFFIX;
}

/** True for `deltaRoomOf`'s rooms. */
export function isDeltaRoom(name: string): boolean {
  return name.endsWith(DELTA_SUFFIX);
}

/** True for the rooms herald puts sockets in that are not subscriptions: connection rooms and delta rooms. */
export function isInternalRoom(name: string): boolean {
  return isConnectionRoom(name) || isDeltaRoom(name);
}
