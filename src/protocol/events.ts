import { HeraldError, type ErrorBody } from '../errors.js';
import type { RoomName } from './rooms.js';

/** Unique per published message. */
export type MessageId = string;

/** Second argument of every delivered message: `socket.on(event, (data, meta) => ...)`. */
export interface MessageMeta {
  room: RoomName;
  id: MessageId;
  /** Publish time, ms since the epoch. */
  ts: number;
}

/**
 * `recovered` is present when the client sent `since`: true when it was sent every message after
 * `since`, false when that was impossible and it must reload its state.
 * `offset` (history rooms) is the position reached: the client sends it as `since` on its next
 * subscribe unless it has received a newer message since. Absent while history is unreachable.
 */
export type SubscribeAck =
  | { ok: true; room: RoomName; recovered?: boolean; offset?: MessageId }
  | { ok: false; error: ErrorBody };

/**
 * Most entries a subscribe may ask for with `last`, and most a history room's `last=` option may
 * give: a tail is read in one request and sent before the subscribe is answered.
 */
export const LAST_MAX = 100;

/** Prefix of herald's own server-to-client events; publishers may not use it. */
export const SYSTEM_EVENT_PREFIX = 'herald:';

/** Sent once on every connection: which replica the client landed on. */
export const HELLO_EVENT = 'herald:hello';
export interface Hello {
  replica: string;
}

/** Sent before herald itself disconnects a client, with `{code, message}`. */
export const DISCONNECT_EVENT = 'herald:disconnect';

/** Sent a minute before a connection's token expires, with `{expiresIn}` (seconds). */
export const TOKEN_EXPIRING_EVENT = 'herald:token_expiring';

/**
 * Sent to the members of a history room when herald could not fill a gap in its live delivery
 * (after the bus reconnected the history was trimmed past it, lost with Redis's data, or is
 * unreachable): messages may be missing, the client must reload the room's state. `offset` is
 * the room's position to continue from (as `since`), absent while the history is unreachable.
 */
export const RESET_EVENT = 'herald:reset';
export interface Reset {
  room: RoomName;
  offset?: MessageId;
  code: 'history_lost' | 'history_unreachable';
}

export const EVENT_MAX_LENGTH = 64;

// Socket.IO throws when asked to emit these, and clients treat them specially.
const RESERVED_EVENTS = new Set([
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'newListener',
  'removeListener',
  'error',
]);

/** Returns `input` as an event name, or throws `invalid_event` (reserved names and the `herald:` prefix included). */
export function validateEventName(input: unknown): string {
  if (
    typeof input !== 'string' ||
    input.length === 0 ||
    input.length > EVENT_MAX_LENGTH ||
    !/^[\x21-\x7e]+$/.test(input) ||
    RESERVED_EVENTS.has(input) ||
    input.startsWith(SYSTEM_EVENT_PREFIX)
  ) {
    throw new HeraldError('invalid_event');
  }
  return input;
}
