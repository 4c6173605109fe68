import type { Identity } from '../auth/identity.js';
import type { ErrorBody } from '../errors.js';
import type { HistoryEntry } from '../history/types.js';
import { DISCONNECT_EVENT, type MessageId } from '../protocol/events.js';
import { compareIds } from '../protocol/ids.js';
import type { RoomName } from '../protocol/rooms.js';
import type { StreamSink } from '../http/route.js';
import { encodeEventId, type StreamPositions } from './event-id.js';
import { eventFrame, HEARTBEAT, idLine, retryLine, SUBSCRIBED_EVENT } from './frames.js';

/** One delivery as the hub hands it to every stream in a room: serialized once. */
export interface Delivery {
  /** `event:` and `data:` lines, ready to write. */
  readonly frame: string;
  /** `meta.id`: the entry's position, in a history room. */
  readonly id: MessageId | undefined;
  /** A `herald:reset` of a history room: where the room continues from. */
  readonly resetTo?: MessageId;
}

/**
 * Live entries held for one stream's history room while its replay is read. Past this they are
 * let go and the replay reads on from the history, which has them too (as for Socket.IO, src/history/catchup.ts).
 */
export const SSE_HELD_MAX = 256;

/** A history room of a stream: replaying (live entries held) or live (entries at or below `position` dropped). */
interface Track {
  readonly index: number;
  phase: 'replaying' | 'live';
  held: Delivery[];
  letGo: boolean;
}

export interface StreamOptions {
  readonly id: string;
  readonly identity: Identity;
  /** The client address per-IP limits count. */
  readonly address: string;
  /** The request's rooms, each once, in its order. */
  readonly rooms: readonly RoomName[];
  /** Those with history, in the same order: the positions of the `id:`. */
  readonly historyRooms: readonly RoomName[];
  readonly tag: string;
  /** Where each history room starts (from `Last-Event-ID` or `since`). */
  readonly positions: StreamPositions;
  /** Past this many queued bytes the stream is closed (SLOW_CLIENT_MAX_BYTES). */
  readonly boundBytes: number;
}

/**
 * One Server-Sent Events connection: what it was sent per history room (the `id:`), its
 * catch-ups, and its output, bounded. The hub (hub.ts) routes deliveries to it; follow.ts fills
 * its history rooms.
 */
export class SseStream {
  readonly id: string;
  readonly identity: Identity;
  readonly address: string;
  readonly rooms: readonly RoomName[];
  readonly openedAt = Date.now();
  /** The hub's member sets this stream is in, by room (for its removal). */
  readonly joinedRooms = new Map<RoomName, Set<SseStream>>();
  /** Why herald ended it (a `herald:disconnect` code), for `connection.closed`; undefined: the peer left. */
  endReason: string | undefined;
  /** Set by the hub when a timer (token expiry) belongs to this stream. */
  timer: NodeJS.Timeout | undefined;
  lastWriteAt = Date.now();
  private readonly tracks = new Map<RoomName, Track>();
  private readonly positions: StreamPositions;
  private readonly tag: string;
  private idText: string | undefined;
  private onOverflow: (() => void) | undefined;

  constructor(
    private readonly sink: StreamSink,
    private readonly opts: StreamOptions,
  ) {
    this.id = opts.id;
    this.identity = opts.identity;
    this.address = opts.address;
    this.rooms = opts.rooms;
    this.tag = opts.tag;
    this.positions = [...opts.positions];
    opts.historyRooms.forEach((room, index) => this.tracks.set(room, { index, phase: 'replaying', held: [], letGo: false }));
  }

  get closed(): boolean {
    return this.sink.closed;
  }

  get queuedBytes(): number {
    return this.sink.queuedBytes;
  }

  /** Where `room`'s history continues from for this stream (undefined: not a history room, or not known). */
  position(room: RoomName): MessageId | undefined {
    const t = this.tracks.get(room);
    return t ? this.positions[t.index] : undefined;
  }

  isHistoryRoom(room: RoomName): boolean {
    return this.tracks.has(room);
  }

  /** Called once when the stream passes its bound (the hub counts it and lets go of it). */
  overflowed(fn: () => void): void {
    this.onOverflow = fn;
  }

  whenDrained(fn: () => void): void {
    this.sink.whenDrained(fn);
  }

  onClose(fn: () => void): void {
    this.sink.onClose(fn);
  }

  /** The stream's first lines: the reconnect delay, then `herald:hello`. */
  start(retryMs: number, hello: unknown): void {
    this.write(retryLine(retryMs) + eventFrame('herald:hello', hello));
  }

  /** A herald event to this stream alone (`herald:subscribed`, `herald:token_expiring`). */
  event(name: string, data: unknown): void {
    this.write(eventFrame(name, data));
  }

  /**
   * `herald:subscribed` of a room, with the stream's `id:` once a history room has its position:
   * a reader that receives nothing more still resumes from there.
   */
  subscribed(room: RoomName, data: unknown): void {
    const withId = this.tracks.has(room) && this.idText !== undefined;
    this.write((withId ? idLine(this.idText!) : '') + eventFrame(SUBSCRIBED_EVENT, data));
  }

  heartbeat(now: number, idleMs: number): void {
    if (now - this.lastWriteAt >= idleMs) this.write(HEARTBEAT);
  }

  /** A live delivery into `room`: held while the room replays, dropped when already sent. */
  deliver(room: RoomName, d: Delivery): void {
    const t = this.tracks.get(room);
    if (!t) return void this.write(d.frame);
    if (d.id === undefined) {
      if (d.resetTo !== undefined) this.moveTo(t, d.resetTo);
      return void this.write(d.frame);
    }
    if (t.phase === 'replaying') {
      if (t.held.length >= SSE_HELD_MAX) {
        t.held = [];
        t.letGo = true;
      }
      t.held.push(d);
      return;
    }
    this.sendAt(t, d);
  }

  /** An entry of a history room's replay, sent at once. */
  replayed(room: RoomName, e: HistoryEntry): void {
    const t = this.tracks.get(room);
    if (t) this.sendAt(t, { frame: eventFrame(e.event, e.data, { room: e.room, id: e.id, ts: e.ts }), id: e.id });
  }

  /** Starts a replay read: whether entries were let go since the last one started. */
  readStarted(room: RoomName): void {
    const t = this.tracks.get(room);
    if (t) t.letGo = false;
  }

  lettingGo(room: RoomName): boolean {
    return this.tracks.get(room)?.letGo === true;
  }

  /**
   * The replay of `room` is done up to `mark` (undefined: history unreachable, live only): the
   * held entries after it go out, then live ones.
   */
  goLive(room: RoomName, mark: MessageId | undefined): void {
    const t = this.tracks.get(room);
    if (!t || t.phase === 'live') return;
    if (mark !== undefined) this.moveTo(t, mark);
    const held = t.held;
    t.held = [];
    t.phase = 'live';
    for (const d of held) this.sendAt(t, d);
  }

  /**
   * Ends the stream: `herald:disconnect` with `body` and, when given, a `retry:` (a drain: come
   * back through the balancer), then the end of the response.
   */
  close(body: ErrorBody | undefined, retryMs?: number): void {
    if (this.closed) return;
    this.endReason = body?.code ?? 'server close';
    let last = '';
    if (retryMs !== undefined) last += retryLine(retryMs);
    if (body) last += eventFrame(DISCONNECT_EVENT, body);
    if (last) this.write(last);
    this.sink.end();
  }

  /** Ends it without a word (a peer that does not read gets nothing more queued). */
  drop(): void {
    this.sink.end();
  }

  joined(): IterableIterator<[RoomName, Set<SseStream>]> {
    return this.joinedRooms.entries();
  }

  private sendAt(t: Track, d: Delivery): void {
    const at = this.positions[t.index];
    if (d.id !== undefined && at !== undefined && compareIds(d.id, at) <= 0) return;
    if (d.id !== undefined) this.moveTo(t, d.id);
    this.write(idLine(this.idText!) + d.frame);
  }

  private moveTo(t: Track, id: MessageId): void {
    this.positions[t.index] = id;
    this.idText = encodeEventId(this.tag, this.positions);
  }

  private write(text: string): void {
    if (!this.sink.write(text)) return;
    this.lastWriteAt = Date.now();
    if (this.sink.queuedBytes > this.opts.boundBytes) {
      const fn = this.onOverflow;
      this.onOverflow = undefined;
      this.sink.end();
      fn?.();
    }
  }
}
