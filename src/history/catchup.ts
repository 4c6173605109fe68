import type { Socket } from 'socket.io';
import type { HistoryEntry } from './types.js';
import type { MessageId, MessageMeta } from '../protocol/events.js';
import type { RoomName } from '../protocol/rooms.js';

// The parts of a history catch-up (a `since`, `last` or recovery replay to one socket) that
// `HistoryRooms` (src/history/rooms.ts) puts together.

/**
 * A client's allowance of new history rooms: streams herald creates in Redis for rooms that have
 * none yet (HISTORY_NEW_ROOMS_PER_IP), each kept until the room's TTL ends.
 */
export interface RoomBudget {
  /** Takes one; false when none is left. */
  take(): boolean;
  /** Gives back one taken for a room that turned out to have its stream already. */
  giveBack(): void;
}

/**
 * Live entries held for one socket while its replay is read. Past this they are let go and the
 * replay reads on from the stream, which has them too, so a slow replay costs no memory here.
 */
const CATCHUP_HELD_MAX = 256;

/**
 * A socket catching up on a room: live entries are held while the replay is read (`letGo`: some
 * were let go since the last read started, which must then read again), then entries at or below
 * the last one it was sent are dropped until a newer one arrives (the pub/sub copy of an entry the
 * replay already returned can still be on its way).
 */
export type Replaying = { phase: 'replaying'; buffer: HistoryEntry[]; letGo: boolean };
export type Catchup = Replaying | { phase: 'settling'; mark: MessageId };

/**
 * Resolves once `socket` can take more (its queued output is well under the slow-consumer bound);
 * undefined when it can now. Catch-ups send at this pace: a replay larger than the bound would
 * otherwise close the client it is for, again at every reconnect.
 */
export type Pace = (socket: Socket) => Promise<void> | undefined;

/** Holds a live entry for a replaying socket, or lets the held ones go (see `CATCHUP_HELD_MAX`). */
export function hold(c: Replaying, entry: HistoryEntry): void {
  if (c.buffer.length >= CATCHUP_HELD_MAX) {
    c.buffer = [];
    c.letGo = true;
  }
  c.buffer.push(entry);
}

const RESTORED = Symbol.for('herald.restored');

/** Connection recovery restored `room` into `socket` from the position its client had (see `HistoryRooms.join`). */
export function markRestored(socket: Socket, room: RoomName): void {
  const data = socket.data as Record<symbol, Set<RoomName> | undefined>;
  (data[RESTORED] ??= new Set()).add(room);
}

/** The rooms `markRestored` marked in `socket`. */
export function restoredRooms(socket: Socket): Set<RoomName> | undefined {
  return (socket.data as Record<symbol, Set<RoomName> | undefined> | undefined)?.[RESTORED];
}

export function meta(e: HistoryEntry): MessageMeta {
  return { room: e.room, id: e.id, ts: e.ts };
}

/** Sends an entry to one socket (a catch-up); with recovery on, the journal records it (src/recovery/journal.ts). */
export function send(socket: Socket, e: HistoryEntry): void {
  socket.emit(e.event, e.data, meta(e));
}
