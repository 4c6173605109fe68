import { randomBytes } from 'node:crypto';
import type { MessageId } from '../protocol/events.js';
import type { RoomName } from '../protocol/rooms.js';
import { idOf, idParts, Ring, RingHeap } from './ring.js';

/** How much the journal keeps (settings RECOVERY_JOURNAL_*, RECOVERY_SOCKET_SENDS). */
export interface JournalLimits {
  /** Shared deliveries kept per room; the oldest go first. @default 20000 */
  readonly roomEntries: number;
  /** Shared deliveries kept per replica, all rooms together; the replica's oldest go first. @default 1000000 */
  readonly entries: number;
  /** What one socket was sent alone, across its rooms; the oldest go first. @default 256 */
  readonly socketSends: number;
}

export const JOURNAL_DEFAULTS: JournalLimits = { roomEntries: 20_000, entries: 1_000_000, socketSends: 256 };

/**
 * One socket's position in one history room (see `Journal`), as the journal keeps it and as a
 * stored session carries it.
 */
export interface Track {
  /** Where its catch-up started: the id it had; undefined: unknown. */
  base: MessageId | undefined;
  /** What it was sent alone, oldest first, as [seq, ms, sub] triples (see ring.ts). */
  sends: number[];
  /** [seq, ms, sub] of the newest send dropped to keep within `socketSends`. */
  floor?: [number, number, number];
  /** Receives the room's shared deliveries with a seq above this; undefined: still catching up. */
  liveFrom?: number;
}

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
 * - a room's shared deliveries (a live entry to its local members) are kept here per room, as
 *   (seq, entry id), while a session may need them; a delivery to a room without local members
 *   reached nobody and is not kept;
 * - what one socket was sent alone (its catch-up after a `since`, `last` or recovery) is kept per
 *   socket and room, with where that catch-up started (`base`) and the seq from which it
 *   receives the room's shared deliveries (`liveFrom`).
 *
 * The last entry a client has in room R is then the newest of: its own sends with seq ≤ offset;
 * R's shared deliveries with liveFrom < seq ≤ offset; else `base`. Entries it was sent after
 * its offset (written to a connection that dropped before they arrived) are not counted, so the
 * recovery sends them again.
 *
 * Memory is bounded by `JournalLimits`, whatever the messages' size (an entry is 24 bytes). What
 * is dropped leaves a floor behind, so an offset older than what is kept gives "cannot be told"
 * (`recovered: false`, the room not restored), never a wrong position.
 */
export class Journal {
  readonly epoch = randomBytes(6).toString('base64url');
  private seq = 0;
  private readonly rooms = new Map<RoomName, Ring>();
  private readonly sockets = new Map<string, { tracks: Map<RoomName, Track>; count: number }>();
  /** Non-empty rings by their oldest entry, for the per-replica bound. */
  private readonly heap = new RingHeap();
  private total = 0;

  constructor(readonly limits: JournalLimits = JOURNAL_DEFAULTS) {}

  /** The next offset, for a packet about to be delivered. */
  next(): { seq: number; offset: string } {
    const seq = ++this.seq;
    return { seq, offset: `${this.epoch}.${seq}` };
  }

  /** The seq of the last delivery so far. */
  get current(): number {
    return this.seq;
  }

  /** Shared deliveries kept in memory, all rooms together. */
  get entries(): number {
    return this.total;
  }

  /** A live entry of `room` went to its local members under `seq`. */
  shared(room: RoomName, seq: number, id: MessageId): void {
    let ring = this.rooms.get(room);
    if (!ring) this.rooms.set(room, (ring = new Ring()));
    if (ring.size >= this.limits.roomEntries) this.drop(ring, true);
    ring.push(seq, idParts(id), this.limits.roomEntries);
    this.total++;
    if (ring.heapAt < 0) this.heap.add(ring);
    while (this.total > this.limits.entries) this.drop(this.heap.top!, true);
  }

  /** `room`'s shared deliveries, for the session store; undefined when it had none. */
  ring(room: RoomName): Ring | undefined {
    return this.rooms.get(room);
  }

  /** The session store has `room`'s entries up to `seq` (from `ring`): they are looked up there from now on. */
  stored(room: RoomName, ring: Ring, seq: number): void {
    // Swept while it was being written: nothing left here to let go of.
    if (this.rooms.get(room) !== ring) return;
    ring.storedSeq = Math.max(ring.storedSeq, seq);
    ring.storedAt = Date.now();
    while (ring.size > 0 && ring.seqAt(0) <= ring.storedSeq) this.drop(ring, false);
  }

  /** Drops the rings of rooms without local members that no saved session can need any more. */
  sweep(idleSince: number, inUse: (room: RoomName) => boolean): void {
    for (const [room, ring] of this.rooms) {
      if (ring.touched >= idleSince || inUse(room)) continue;
      this.rooms.delete(room);
      this.total -= ring.size;
      this.heap.remove(ring);
    }
  }

  /** A catch-up of `socketId` in `room` starts after `base` (the id it has; undefined: unknown). */
  begin(socketId: string, room: RoomName, base: MessageId | undefined): void {
    this.forget(socketId, room);
    let s = this.sockets.get(socketId);
    if (!s) this.sockets.set(socketId, (s = { tracks: new Map(), count: 0 }));
    s.tracks.set(room, { base, sends: [] });
  }

  /**
   * A catch-up of `socketId` in `room` starts after `id`, which this replica sent it already, on
   * this connection, under offsets up to the current one (a restore's replay that a `subscribe
   * {since}` of the same room supersedes, src/history/rooms.ts). Those sends may still have been
   * in flight: a client whose offset is older may not hold `id`, so for it the position cannot be
   * told (the restore says `recovered: false` and it subscribes again with its own `since`),
   * rather than told as `id` (which would skip what it never received).
   */
  beginAfter(socketId: string, room: RoomName, id: MessageId): void {
    this.begin(socketId, room, undefined);
    const track = this.track(socketId, room);
    if (track) track.floor = [this.seq, ...idParts(id)];
  }

  /** The catch-up sends what follows `base`: its starting point, unless something was sent already. */
  startAt(socketId: string, room: RoomName, base: MessageId): void {
    const track = this.track(socketId, room);
    if (track && track.sends.length === 0 && !track.floor) track.base = base;
  }

  /** An entry of `room` went to `socketId` alone under `seq`. */
  sent(socketId: string, room: RoomName, seq: number, id: MessageId): void {
    const s = this.sockets.get(socketId);
    const track = s?.tracks.get(room);
    if (!s || !track) return;
    track.sends.push(seq, ...idParts(id));
    if (++s.count > this.limits.socketSends) this.trim(s);
  }

  /** From now on `socketId` receives `room`'s shared deliveries. */
  live(socketId: string, room: RoomName): void {
    const track = this.track(socketId, room);
    if (track) track.liveFrom = this.seq;
  }

  /**
   * Whether `socketId` has a track in `room` that does not take the room's shared deliveries:
   * catching up, or held back by conflation (src/realtime/conflation.ts).
   */
  notLive(socketId: string, room: RoomName): boolean {
    const t = this.track(socketId, room);
    return t !== undefined && t.liveFrom === undefined;
  }

  /** What is known of `socketId` in `room`, as a copy for its session. */
  snapshot(socketId: string, room: RoomName): Track | undefined {
    const t = this.track(socketId, room);
    if (!t) return undefined;
    return { base: t.base, sends: t.sends.slice(), ...(t.floor ? { floor: t.floor } : {}), ...(t.liveFrom !== undefined ? { liveFrom: t.liveFrom } : {}) };
  }

  /** The last entry of `room` sent to `socketId` alone; undefined when none is known. */
  lastSent(socketId: string, room: RoomName): MessageId | undefined {
    const t = this.track(socketId, room);
    if (!t) return undefined;
    const n = t.sends.length;
    if (n > 0) return idOf(t.sends[n - 2]!, t.sends[n - 1]!);
    return t.floor ? idOf(t.floor[1], t.floor[2]) : undefined;
  }

  forget(socketId: string, room?: RoomName): void {
    const s = this.sockets.get(socketId);
    if (!s) return;
    if (room === undefined) {
      this.sockets.delete(socketId);
      return;
    }
    const t = s.tracks.get(room);
    if (!t) return;
    s.count -= t.sends.length / 3;
    s.tracks.delete(room);
    if (s.tracks.size === 0) this.sockets.delete(socketId);
  }

  private track(socketId: string, room: RoomName): Track | undefined {
    return this.sockets.get(socketId)?.tracks.get(room);
  }

  private drop(ring: Ring, floor: boolean): void {
    ring.shift(floor);
    this.total--;
    this.heap.changed(ring);
  }

  /**
   * Drops a socket's oldest sends, across its rooms, down to 7/8 of the bound (so that this runs
   * once per many sends). Each track keeps the newest it dropped as its floor.
   */
  private trim(s: { tracks: Map<RoomName, Track>; count: number }): void {
    const excess = s.count - (this.limits.socketSends - (this.limits.socketSends >> 3));
    const seqs: number[] = [];
    for (const t of s.tracks.values()) for (let i = 0; i < t.sends.length; i += 3) seqs.push(t.sends[i]!);
    seqs.sort((a, b) => a - b);
    const through = seqs[excess - 1]!;
    for (const t of s.tracks.values()) {
      let n = 0;
      while (n < t.sends.length && t.sends[n]! <= through) n += 3;
      if (n === 0) continue;
      t.floor = [t.sends[n - 3]!, t.sends[n - 2]!, t.sends[n - 1]!];
      t.sends.splice(0, n);
      s.count -= n / 3;
    }
  }
}

/**
 * The last entry a track's own sends give for an offset at `seq`: the newest send at or before
 * it, else `base`; undefined when it cannot be told (the sends it would be were dropped).
 */
export function ownPosition(track: Track, seq: number): MessageId | undefined {
  const s = track.sends;
  let found = -1;
  for (let i = 0; i < s.length && s[i]! <= seq; i += 3) found = i;
  if (found >= 0) return idOf(s[found + 1]!, s[found + 2]!);
  if (track.floor) return seq >= track.floor[0] ? idOf(track.floor[1], track.floor[2]) : undefined;
  return track.base;
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
