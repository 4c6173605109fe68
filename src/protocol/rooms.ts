import { HeraldError } from '../errors.js';

/** A room name as clients and publishers write it, e.g. `scores:match-42`. */
export type RoomName = string;

/** Longest accepted room name, in characters. */
export const ROOM_MAX_LENGTH = 128;

// Deliberately narrow: no whitespace, no wildcards (`*` is reserved for authorization patterns),
// no `#` (the Redis adapter uses it as a channel separator).
const ROOM_PATTERN = /^[A-Za-z0-9_\-:.@=]+$/;

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
