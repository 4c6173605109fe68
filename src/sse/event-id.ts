import { createHash } from 'node:crypto';
import { HeraldError } from '../errors.js';
import { isStreamId } from '../protocol/ids.js';
import type { MessageId } from '../protocol/events.js';
import type { RoomName } from '../protocol/rooms.js';

/**
 * The `id:` of a Server-Sent Events stream: the position of every history room of the stream,
 * which a reconnecting EventSource sends back as `Last-Event-ID` and herald resumes from, on any
 * replica, with no state kept anywhere:
 *
 *   `<tag>:<id>,<id>,...`
 *
 * one `<ms>-<seq>` (the last `meta.id` sent in that room, or empty when it cannot be told) per
 * history room, in the order the request names them; `<tag>` is 8 hex digits of SHA-256 over
 * those room names (joined by newlines), so an id is only taken back by a stream of the same
 * history rooms. Its length is bounded by the room count: at most 9 + 32 per history room
 * characters (`EVENT_ID_MAX_CHARS` for SSE_MAX_ROOMS rooms).
 *
 * It needs no signature: it grants nothing. A made-up position only picks where a room's replay
 * starts, which `since` lets any client pick anyway; the rooms are the request's, checked as ever.
 */
export type StreamPositions = (MessageId | undefined)[];

/** Longest stream id herald writes, or reads back, for streams of `maxRooms` rooms. */
export function eventIdMaxChars(maxRooms: number): number {
  return TAG_CHARS + 1 + maxRooms * (POSITION_MAX_CHARS + 1);
}
const TAG_CHARS = 8;
/** `<ms>-<seq>` with at most 15 digits each (src/protocol/ids.ts). */
const POSITION_MAX_CHARS = 31;

/** The tag of a stream whose history rooms are `rooms`, in the request's order. */
export function roomsTag(rooms: readonly RoomName[]): string {
  return createHash('sha256').update(rooms.join('\n')).digest('hex').slice(0, TAG_CHARS);
}

export function encodeEventId(tag: string, positions: StreamPositions): string {
  return `${tag}:${positions.map((p) => p ?? '').join(',')}`;
}

/**
 * The positions in `raw` (a `Last-Event-ID`, or `since`), one per history room; throws
 * `invalid_last_event_id` for one too long, of another set of rooms, or malformed.
 */
export function decodeEventId(raw: string, tag: string, rooms: number, maxChars: number): StreamPositions {
  if (raw.length > maxChars) throw new HeraldError('invalid_last_event_id', `The stream id is longer than ${maxChars} characters, the most this replica writes.`);
  const colon = raw.indexOf(':');
  if (colon !== TAG_CHARS || raw.slice(0, colon) !== tag) {
    throw new HeraldError('invalid_last_event_id', 'The stream id was not written for this set of history rooms; reconnect without Last-Event-ID (or with the rooms it came from).');
  }
  const parts = raw.slice(colon + 1).split(',');
  if (parts.length !== rooms) throw new HeraldError('invalid_last_event_id', `The stream id names ${parts.length} positions; this stream has ${rooms} history rooms.`);
  return parts.map((p) => {
    if (p === '') return undefined;
    if (!isStreamId(p)) throw new HeraldError('invalid_last_event_id', `"${String(p).slice(0, 40)}" is not a message id (<ms>-<seq>).`);
    return p;
  });
}
