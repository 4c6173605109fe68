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
  readonly resetTo: MessageId | undefined;
  /**
   * The last `id:` line and frame built for this delivery, kept for the next stream that is where
   * the previous one was (see `IdMemo`); undefined until a stream of a history room needs one.
   */
  memo: IdMemo | undefined;
}

/** A delivery as the hub (or a replay) makes it, before any stream has it. */
export function delivery(frame: string, id: MessageId | undefined, resetTo?: MessageId): Delivery {
  return { frame, id, resetTo, memo: undefined };
}

/**
 * What a delivery became for one stream of a history room: `chunk` (its `id:` line and frame)
 * and `idText` (the `id:` after it), for a stream whose `id:` was `prior` before it, at position
 * `index` of its history rooms. Streams of the same history rooms that are in step (every live
 * one usually is: they received the same entries) have the same `id:` text, so the `id:` line and
 * the text written are built once per delivery, not once per stream, and the position check
 * (`compareIds`) that passed for the first stream holds for the others.
 */
interface IdMemo {
  readonly prior: string;
  readonly index: number;
  readonly idText: string;
  readonly chunk: string;
}

/**
 * What a stream is written in one event-loop turn reaches its sink at the end of the turn
 * (`setImmediate`), in one write: one system call per stream per turn, however many messages the
 * turn delivered, as uWS sends a WebSocket's topic messages at the end of the loop iteration. It
 * also keeps the write out of whatever uWS was doing when the message came: a delivery made
 * inside a request's handler (a publish) runs while uWS has that request's socket corked, and
 * uWS corks one socket at a time, so a stream written there could not be corked and each of the
 * four pieces of an HTTP chunk (size, line end, text, line end) was a `send` of its own.
 *
 * `waiting`: the streams with text for the end of this turn, in the order they were first
 * written to in it.
 */
let waiting: SseStream[] = [];
let flushScheduled = false;

/**
 * The last text a stream's pending text and a write were joined into. The hub writes one delivery
 * to every stream of a room in a row, and streams in step hold the same pending text, so they
 * share one joined string: the transport flattens it once, not once per stream.
 */
let joinedPrior = '';
let joinedText = '';
let joined = '';

function flushWaiting(): void {
  flushScheduled = false;
  joinedPrior = joinedText = joined = '';
  const streams = waiting;
  waiting = [];
  const now = Date.now();
  for (const s of streams) s.flush(now);
}

/** A replay (follow.ts) hands over about this much text at once (less than the smallest SLOW_CLIENT_MAX_BYTES), then waits for the reader to take it. */
export const REPLAY_BATCH_CHARS = 8 * 1024;

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
  /** Written this turn, not yet handed to the sink (see `waiting`). */
  private pending = '';

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

  /** What the sink holds that the peer has not taken (what waits for the end of the turn is not counted: the peer has not been offered it yet). */
  get queuedBytes(): number {
    return this.sink.queuedBytes;
  }

  /** Whether a replay should wait for the reader first: the sink holds what the peer has not taken, or a batch waits for the end of the turn. */
  get backlogged(): boolean {
    return this.sink.queuedBytes > 0 || this.pending.length >= REPLAY_BATCH_CHARS;
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

  /** Hands what waits for the end of the turn to the sink now, and calls `fn` once the sink has passed it all on. */
  whenDrained(fn: () => void): void {
    this.flush(Date.now());
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
    if (now - this.lastWriteAt >= idleMs && this.pending === '') this.write(HEARTBEAT);
  }

  /** A live delivery into `room`: held while the room replays, dropped when already sent. */
  deliver(room: RoomName, d: Delivery): void {
    const t = this.tracks.size === 0 ? undefined : this.tracks.get(room);
    if (!t) return void this.write(d.frame);
    if (d.id === undefined) {
      if (d.resetTo === undefined) return void this.write(d.frame);
      // A `herald:reset` moves the room's position: its `id:` says so at once, so a reconnect
      // before the next message resumes from the reset, not from before it.
      this.moveTo(t, d.resetTo);
      return void this.write(idLine(this.idText!) + d.frame);
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
    if (t) this.sendAt(t, delivery(eventFrame(e.event, e.data, { room: e.room, id: e.id, ts: e.ts }), e.id));
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
    this.flush(Date.now());
    this.sink.end();
  }

  /** Ends it without a word (a peer that does not read gets nothing more queued). */
  drop(): void {
    this.pending = '';
    this.sink.end();
  }

  /** Hands what was written since the last flush to the sink, in one write (`now`: the time to count it written at). */
  flush(now: number): void {
    const text = this.pending;
    if (text === '') return;
    this.pending = '';
    if (!this.sink.write(text)) return;
    this.lastWriteAt = now;
    if (this.sink.queuedBytes > this.opts.boundBytes) this.overflow();
  }

  joined(): IterableIterator<[RoomName, Set<SseStream>]> {
    return this.joinedRooms.entries();
  }

  /** An entry of a history room (`d.id` set), unless the stream is already past it, with the stream's `id:` after it. */
  private sendAt(t: Track, d: Delivery): void {
    const id = d.id;
    if (id === undefined) return void this.write(d.frame);
    const prior = this.idText;
    const m = d.memo;
    if (m !== undefined && prior !== undefined && m.index === t.index && m.prior === prior) {
      // In step with the stream this delivery was last built for: the same check passed, the same text follows.
      this.positions[t.index] = id;
      this.idText = m.idText;
      return this.write(m.chunk);
    }
    const at = this.positions[t.index];
    if (at !== undefined && compareIds(id, at) <= 0) return;
    this.moveTo(t, id);
    const chunk = idLine(this.idText!) + d.frame;
    if (prior !== undefined) d.memo = { prior, index: t.index, idText: this.idText!, chunk };
    this.write(chunk);
  }

  private moveTo(t: Track, id: MessageId): void {
    this.positions[t.index] = id;
    this.idText = encodeEventId(this.tag, this.positions);
  }

  /**
   * Queues `text` for the end of the turn (`waiting`). The bound is checked when it reaches the
   * sink (`flush`): a turn's text is what this turn delivered, whatever the reader does; what the
   * reader does not take piles up in the sink, and that is bounded.
   */
  private write(text: string): void {
    if (this.sink.closed) return;
    if (this.pending === '') {
      this.pending = text;
      waiting.push(this);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flushWaiting);
      }
    } else if (this.pending === joinedPrior && text === joinedText) {
      this.pending = joined;
    } else {
      joinedPrior = this.pending;
      joinedText = text;
      this.pending = joined = joinedPrior + text;
    }
  }

  private overflow(): void {
    const fn = this.onOverflow;
    this.onOverflow = undefined;
    this.pending = '';
    this.sink.end();
    fn?.();
  }
}
