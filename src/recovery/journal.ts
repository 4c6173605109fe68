import { randomBytes } from 'node:crypto';
import type { MessageId } from '../protocol/events.js';
import type { RoomName } from '../protocol/rooms.js';

/**
 * Offsets for Socket.IO's connection state recovery, and the record of which history entry went
 * out under which offset.
 *
 * Every event packet this replica delivers gets one offset appended, `<epoch>.<seq>`: `epoch`
 * names this process, `seq` counts its deliveries. One packet has one offset for all its
 * recipients (the bytes of a room publish stay the same for every socket, so uWS topics and
 * batching work as before), and a socket receives this replica's packets in `seq` order.
 * socket.io-client keeps the offset of the last packet it received and sends it back when it
 * reconnects; what the client has of each history room follows from it:
 *
 * - a room's shared deliveries (a live entry to every member) are kept here per room, as
 *   (seq, entry id), for as long as a session may need them;
 * - what one socket was sent alone (its catch-up after a `since`, `last` or recovery) is kept per
 *   socket and room, with where that catch-up started (`base`) and the seq from which it
 *   receives the room's shared deliveries (`liveFrom`).
 *
 * The last entry a client has in room R is then the newest of: its own sends with seq ≤ offset;
 * R's shared deliveries with liveFrom < seq ≤ offset; else `base`. Entries it was sent after
 * its offset (written to a connection that dropped before they arrived) are not counted, so the
 * recovery sends them again.
 */
export class Journal {
  readonly epoch = randomBytes(6).toString('base64url');
  private seq = 0;
  private readonly rooms = new Map<RoomName, Ring>();
  private readonly sockets = new Map<string, Map<RoomName, Track>>();

  constructor(private readonly keep: number = RING_CAPACITY) {}

  /** The next offset, for a packet about to be delivered. */
  next(): { seq: number; offset: string } {
    const seq = ++this.seq;
    return { seq, offset: `${this.epoch}.${seq}` };
  }

  /** The seq of the last delivery so far. */
  get current(): number {
    return this.seq;
  }

  /** A live entry of `room` went to its members under `seq`. */
  shared(room: RoomName, seq: number, id: MessageId): void {
    let ring = this.rooms.get(room);
    if (!ring) this.rooms.set(room, (ring = new Ring(this.keep)));
    ring.push(seq, id);
  }

  /** `room`'s shared deliveries, for the session store; undefined when it had none. */
  ring(room: RoomName): Ring | undefined {
    return this.rooms.get(room);
  }

  /** A catch-up of `socketId` in `room` starts after `base` (the id it has; undefined: unknown). */
  begin(socketId: string, room: RoomName, base: MessageId | undefined): void {
    this.tracks(socketId).set(room, { base, sends: [] });
  }

  /** The catch-up sends what follows `base`: its starting point, unless something was sent already. */
  startAt(socketId: string, room: RoomName, base: MessageId): void {
    const track = this.sockets.get(socketId)?.get(room);
    if (track && track.sends.length === 0) track.base = base;
  }

  /** Drops the rings of rooms without local members that no saved session can need any more. */
  sweep(idleSince: number, inUse: (room: RoomName) => boolean): void {
    for (const [room, ring] of this.rooms) if (ring.touched < idleSince && !inUse(room)) this.rooms.delete(room);
  }

  /** An entry of `room` went to `socketId` alone under `seq`. */
  sent(socketId: string, room: RoomName, seq: number, id: MessageId): void {
    const track = this.sockets.get(socketId)?.get(room);
    if (!track) return;
    track.sends.push([seq, id]);
    if (track.sends.length > SENDS_KEPT) track.sends.splice(0, track.sends.length - SENDS_KEPT);
  }

  /** From now on `socketId` receives `room`'s shared deliveries. */
  live(socketId: string, room: RoomName): void {
    const track = this.sockets.get(socketId)?.get(room);
    if (track) track.liveFrom = this.seq;
  }

  /** What is known of `socketId` in `room`, for its session. */
  track(socketId: string, room: RoomName): Track | undefined {
    return this.sockets.get(socketId)?.get(room);
  }

  forget(socketId: string, room?: RoomName): void {
    if (room === undefined) this.sockets.delete(socketId);
    else this.sockets.get(socketId)?.delete(room);
  }

  private tracks(socketId: string): Map<RoomName, Track> {
    let m = this.sockets.get(socketId);
    if (!m) this.sockets.set(socketId, (m = new Map()));
    return m;
  }
}

/** One socket's position in one history room (see `Journal`). */
export interface Track {
  base: MessageId | undefined;
  /** [seq, id] of what it was sent alone, oldest first (the newest `SENDS_KEPT`). */
  sends: [number, MessageId][];
  /** Receives the room's shared deliveries with a seq above this; undefined: still catching up. */
  liveFrom?: number;
}

/** A socket's own sends kept per room: a catch-up longer than this cannot be resumed half-way. */
const SENDS_KEPT = 1024;
/** Shared deliveries kept per room; older ones are summed up in `floor`. */
export const RING_CAPACITY = 20_000;

/**
 * A room's shared deliveries, oldest first, bounded: `floor` is the newest one dropped, which is
 * still the answer for an offset between it and the oldest kept.
 */
export class Ring {
  seqs: number[] = [];
  ids: MessageId[] = [];
  floor: [number, MessageId] | undefined;
  /** The newest seq the session store already has (see `SessionStore`). */
  storedSeq = 0;
  /** When the session store last wrote it, ms since the epoch. */
  storedAt = 0;

  constructor(private readonly capacity: number) {}

  /** When the last entry was added, ms since the epoch. */
  touched = Date.now();

  /** Lets go of entries up to `seq` that the session store holds (they are looked up there). */
  dropThrough(seq: number): void {
    let n = 0;
    while (n < this.seqs.length && this.seqs[n]! <= seq) n++;
    if (n === 0) return;
    // Still the answer for an offset after it (a portable offset reads this ring, not the store's).
    this.floor = [this.seqs[n - 1]!, this.ids[n - 1]!];
    this.seqs.splice(0, n);
    this.ids.splice(0, n);
  }

  push(seq: number, id: MessageId): void {
    this.touched = Date.now();
    this.seqs.push(seq);
    this.ids.push(id);
    if (this.seqs.length > this.capacity * 1.25) {
      const drop = this.seqs.length - this.capacity;
      this.floor = [this.seqs[drop - 1]!, this.ids[drop - 1]!];
      this.seqs.splice(0, drop);
      this.ids.splice(0, drop);
    }
  }
}

/**
 * The newest shared delivery with `after < seq ≤ upTo`: its id; `null` when there was none;
 * `undefined` when it cannot be told (dropped from the ring).
 */
export function lastShared(ring: Pick<Ring, 'seqs' | 'ids' | 'floor'>, after: number, upTo: number): MessageId | null | undefined {
  const { seqs, ids } = ring;
  // Binary search for the last index with seq ≤ upTo.
  let lo = 0;
  let hi = seqs.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (seqs[mid]! <= upTo) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (found >= 0) return seqs[found]! > after ? ids[found]! : null;
  const floor = ring.floor;
  if (!floor || floor[0] <= after) return null;
  return floor[0] <= upTo ? floor[1] : undefined;
}

/** Parses an offset this or another replica appended; undefined for anything else. */
export function parseOffset(offset: unknown): { epoch: string; seq: number } | undefined {
  if (typeof offset !== 'string' || offset.length > 40) return undefined;
  const dot = offset.indexOf('.');
  if (dot <= 0) return undefined;
  const seq = Number(offset.slice(dot + 1));
  if (!Number.isSafeInteger(seq) || seq < 0) return undefined;
  return { epoch: offset.slice(0, dot), seq };
}
