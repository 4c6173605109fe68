import type { Server, Socket } from 'socket.io';
import { HeraldError } from '../errors.js';
import { compareIds, isStreamId } from '../history/ids.js';
import { LAST_MAX, type HistoryBackend, type HistoryEntry, type HistoryPolicy } from '../history/types.js';
import { throttle, type Logger } from '../observability/logger.js';
import { setTimeout as delay } from 'node:timers/promises';
import type { Metrics } from '../observability/metrics.js';
import { RESET_EVENT, type MessageId, type MessageMeta, type Reset } from '../protocol/events.js';
import type { PatternTable } from '../protocol/patterns.js';
import type { RoomName } from '../protocol/rooms.js';
import type { Journal } from '../recovery/journal.js';

/** A history room's policy as `HistoryRooms` applies it: what is kept, and what a subscribe starts with. */
export interface HistoryRoomPolicy extends HistoryPolicy {
  /**
   * Newest messages a subscribe without `since` or `last` receives before its ack (the room's
   * `last=` option in HISTORY_ROOMS), at most `LAST_MAX`. @default 0
   */
  readonly last?: number;
}

export interface JoinResult {
  offset?: MessageId;
  recovered?: boolean;
}

/** Entries fetched per history read while replaying. */
const REPLAY_PAGE = 1000;

/** Rooms refilled at once after a gap; the rest wait their turn. */
const REFILL_CONCURRENCY = 16;
/** A refill that cannot read the history retries after 100 ms, 200 ms, ... this many times. */
const REFILL_ATTEMPTS = 7;
const REFILL_RETRY_BASE_MS = 100;

/**
 * A socket catching up on a room: live entries are held while the replay is read, then entries
 * at or below the last one it was sent are dropped until a newer one arrives (the pub/sub copy of
 * an entry the replay already returned can still be on its way).
 */
type Catchup = { phase: 'replaying'; buffer: HistoryEntry[] } | { phase: 'settling'; mark: MessageId };

/**
 * A room whose live entries are held: the bus lost entries of it, and they must be read from
 * the stream and delivered before anything that came after them.
 */
interface Refill {
  held: HistoryEntry[];
  /** The read is under way. */
  running: boolean;
  /** The bus came back again while the read ran: read once more at the end. */
  again: boolean;
}

/**
 * Delivery and recovery for rooms with history. Live entries reach this replica from the history
 * backend (never through the Socket.IO adapter) and go to local members; a member that subscribed
 * with `since` first gets what it missed, in order, with no gap and no duplicate against live.
 *
 * Live delivery survives the bus: per local room herald remembers the last entry it delivered,
 * and when the backend reports a gap (the pub/sub connection dropped and came back) it reads
 * each room's stream from there and delivers what pub/sub lost, in order and once, holding live
 * entries until it has. When the stream no longer has that entry (trimmed, or Redis lost its
 * data) the members get `herald:reset` `{room, offset, code: "history_lost"}` and must reload.
 */
export class HistoryRooms {
  private readonly catchups = new Map<RoomName, Map<string, Catchup>>();
  /** Per local history room, the id of the last entry delivered here. */
  private readonly last = new Map<RoomName, MessageId>();
  private readonly refills = new Map<RoomName, Refill>();
  /** While the bus is down: resolves once it delivers again. Entries arriving meanwhile are held. */
  private resumed: Promise<void> | undefined;
  private readonly unreachableLog = throttle(10_000);
  private readonly resetLog = throttle(10_000);

  constructor(
    private readonly io: Server,
    readonly backend: HistoryBackend,
    private readonly policies: PatternTable<HistoryRoomPolicy>,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    /** With connection recovery on: told what each socket was sent alone and when it went live. */
    private readonly journal?: Journal,
  ) {
    backend.onEntry((entry) => this.accept(entry));
    backend.onGap((resumed) => this.lost(resumed));
    const adapter = io.of('/').adapter;
    adapter.on('delete-room', (room: RoomName) => {
      if (!this.policyFor(room)) return;
      backend.unwatch(room);
      this.last.delete(room);
    });
  }

  policyFor(room: RoomName): HistoryRoomPolicy | undefined {
    return this.policies.match(room);
  }

  /**
   * Joins `socket` to a history room. With `since`, replays what it missed first. Without it, the
   * room's newest `last` messages come first (`last` defaults to the room's `last=` option; 0
   * for none), through the same replay: in order, then live with no gap and no duplicate. Either
   * way the answer carries `offset`, the position the client has reached, to send as `since`
   * next time if it receives nothing newer; `recovered` answers a `since`. Without a reachable
   * history the socket still joins for live messages, and the answer has no `offset`.
   *
   * Built-in connection recovery (src/recovery/) comes through here too: for each history room a
   * restored socket was in, `join` with `since` set to the last id its client had there. `since`
   * wins over `last` and over the room's `last=`, so a recovered socket gets what it missed and
   * not the newest messages again. The journal, when there is one, learns where each socket's
   * catch-up started and when it went live (src/recovery/journal.ts).
   */
  async join(socket: Socket, room: RoomName, asked: unknown, policy: HistoryRoomPolicy, last?: number): Promise<JoinResult> {
    if (asked !== undefined && !isStreamId(asked)) throw new HeraldError('invalid_since');
    let since: MessageId | undefined = asked;
    const tail = since === undefined ? (last ?? policy.last ?? 0) : 0;
    // Already in the room (connection recovery restored it, and the client re-subscribes with
    // `since` as the explicit contract says): what this socket was already sent is not sent again.
    const had = socket.recovered && socket.rooms.has(room) ? this.positionOf(socket.id, room) : undefined;
    if (since !== undefined && had !== undefined && compareIds(had, since) > 0) since = had;
    this.forget(socket.id, room);
    this.journal?.begin(socket.id, room, undefined);
    const catchup: Catchup = { phase: 'replaying', buffer: [] };
    this.roomCatchups(room).set(socket.id, catchup);
    await socket.join(room);
    // Live entries must be arriving before history is read, or one published in between is lost.
    await this.backend.watch(room).catch(() => {});
    const stillWanted = () => socket.connected && socket.rooms.has(room) && this.catchups.get(room)?.get(socket.id) === catchup;

    let mark: MessageId | undefined;
    let recovered: boolean | undefined;
    try {
      if (since !== undefined) {
        const r = await this.replay(socket, room, since, stillWanted);
        recovered = r.recovered;
        if (recovered) mark = r.mark;
      } else if (tail > 0) {
        mark = await this.replayLatest(socket, room, tail, stillWanted);
      }
      // A fresh subscribe (into a room with no entries to send), or one that could not recover,
      // starts from the room's current position; replaying from there catches what is published
      // while that position is being read.
      if (mark === undefined) {
        const r = await this.replay(socket, room, await this.backend.position(room, policy), stillWanted);
        if (r.recovered) mark = r.mark;
      }
    } catch (err) {
      // History unreachable: joined for live messages only.
      mark = undefined;
      if (this.unreachableLog.due()) {
        this.logger.warn({ room, client: socket.id, err: (err as Error).message }, 'history unreachable on subscribe; joined for live messages only');
      }
    }
    if (!stillWanted()) return {};
    for (const e of catchup.buffer) {
      if (mark === undefined || compareIds(e.id, mark) > 0) {
        send(socket, e);
        if (mark !== undefined) mark = e.id;
      }
    }
    if (mark === undefined) {
      this.forget(socket.id, room);
      this.journal?.live(socket.id, room);
    } else this.roomCatchups(room).set(socket.id, { phase: 'settling', mark });
    return {
      ...(mark !== undefined ? { offset: mark } : {}),
      ...(since !== undefined ? { recovered: recovered === true } : {}),
    };
  }

  /**
   * Sends everything after `since`. Resolves with the last id sent (or `since`), and whether the
   * history still held every entry after `since` (if not, the entries sent before a page found
   * it trimmed were still in order and after `since`).
   */
  private async replay(socket: Socket, room: RoomName, since: MessageId, stillWanted: () => boolean): Promise<{ mark: MessageId; recovered: boolean }> {
    let mark = since;
    this.journal?.startAt(socket.id, room, since);
    for (;;) {
      const page = await this.backend.read(room, mark, REPLAY_PAGE);
      if (!page.recovered) return { mark, recovered: false };
      if (!stillWanted()) return { mark, recovered: true };
      for (const e of page.entries) {
        send(socket, e);
        mark = e.id;
      }
      if (page.entries.length < REPLAY_PAGE) return { mark, recovered: true };
    }
  }

  /**
   * Sends the room's newest `count` entries, then whatever was published while they were read.
   * Resolves with the last id sent, or undefined when the room has no entries yet.
   */
  private async replayLatest(socket: Socket, room: RoomName, count: number, stillWanted: () => boolean): Promise<MessageId | undefined> {
    const entries = await this.backend.latest(room, Math.min(count, LAST_MAX));
    const newest = entries.at(-1)?.id;
    if (newest === undefined || !stillWanted()) return newest;
    for (const e of entries) send(socket, e);
    // If a small room was trimmed past `newest` before this read (a burst of publishes), what
    // came after it is in the catch-up buffer: `watch` had resolved before `latest` read, so every
    // entry newer than `newest` reaches `deliver` while this socket is replaying.
    return (await this.replay(socket, room, newest, stillWanted)).mark;
  }

  /** Stops any catch-up of `socketId` in `room` (after unsubscribe or disconnect). */
  forget(socketId: string, room: RoomName): void {
    const m = this.catchups.get(room);
    m?.delete(socketId);
    if (m?.size === 0) this.catchups.delete(room);
  }

  /**
   * The last entry of `room` sent to a socket in it: its own catch-up's (the journal's, which a
   * recovered socket always has), or once live, the room's.
   */
  private positionOf(socketId: string, room: RoomName): MessageId | undefined {
    const c = this.catchups.get(room)?.get(socketId);
    const own = this.journal?.lastSent(socketId, room);
    if (c?.phase === 'settling') return c.mark;
    if (c) return own;
    const live = this.last.get(room);
    return live !== undefined && (own === undefined || compareIds(live, own) > 0) ? live : own;
  }


  /**
   * A live entry from the backend: held while its room awaits a refill (from the moment the bus
   * was lost: the first entries after a reconnect can arrive before the reconnect is reported),
   * dropped if a refill already delivered it.
   */
  private accept(entry: HistoryEntry): void {
    let refill = this.refills.get(entry.room);
    if (!refill && this.resumed) this.refills.set(entry.room, (refill = { held: [], running: false, again: false }));
    if (refill) {
      refill.held.push(entry);
      return;
    }
    const last = this.last.get(entry.room);
    if (last !== undefined && compareIds(entry.id, last) <= 0) return;
    this.deliver(entry);
  }

  /**
   * The bus lost entries. Nothing is delivered live from now on (held instead) until it is back
   * and every local room has been read from the last entry delivered here.
   */
  private lost(resumed: Promise<void>): void {
    this.resumed = resumed;
    void resumed.then(() => {
      if (this.resumed === resumed) this.resumed = undefined;
      return this.refillAll();
    });
  }

  /** After a gap: refills every local history room (and any with held entries), a few at a time. */
  private async refillAll(): Promise<void> {
    const local = [...this.io.of('/').adapter.rooms.keys()].filter((room) => this.policyFor(room));
    const rooms = [...new Set([...local, ...this.refills.keys()])];
    const next = async (): Promise<void> => {
      for (let room = rooms.pop(); room !== undefined; room = rooms.pop()) await this.refill(room);
    };
    await Promise.all(Array.from({ length: Math.min(REFILL_CONCURRENCY, rooms.length) }, next));
  }

  /**
   * Delivers what `room`'s members missed during a gap: every entry after the last one delivered
   * here (or, before any was, after the lowest position a catching-up member settled at).
   */
  private async refill(room: RoomName): Promise<void> {
    let refill = this.refills.get(room);
    if (refill?.running) {
      refill.again = true;
      return;
    }
    if (!refill) this.refills.set(room, (refill = { held: [], running: false, again: false }));
    refill.running = true;
    // Catching-up sockets need no more: entries they miss are delivered through `deliver`, which
    // buffers them for a replay under way and filters them by a settling socket's mark.
    let mark = this.last.get(room) ?? this.lowestSettlingMark(room);
    let delivered = 0;
    try {
      if (mark === undefined) return;
      for (let attempt = 1; ; attempt++) {
        try {
          for (;;) {
            const page = await this.backend.read(room, mark, REPLAY_PAGE);
            if (!page.recovered) {
              await this.reset(room, 'history_lost');
              return;
            }
            for (const e of page.entries) {
              this.deliver(e);
              mark = e.id;
              delivered++;
            }
            if (page.entries.length < REPLAY_PAGE && !refill.again) break;
            refill.again = false;
            // Down again: read the rest once it is back.
            if (this.resumed) await this.resumed;
          }
          break;
        } catch (err) {
          if (attempt >= REFILL_ATTEMPTS || !this.io.of('/').adapter.rooms.has(room)) {
            this.logger.warn({ room, err: (err as Error).message }, 'history unreachable after a bus gap; members told to reload');
            await this.reset(room, 'history_unreachable');
            return;
          }
          await delay(REFILL_RETRY_BASE_MS * 2 ** (attempt - 1));
        }
      }
      if (delivered > 0) this.logger.info({ room, delivered }, 'refilled a history room after a bus gap');
      this.metrics.historyRefilled(delivered);
    } finally {
      this.refills.delete(room);
      for (const e of refill.held) this.accept(e);
    }
  }

  /** Where to refill a room from before anything was delivered in it: its least advanced settling socket. */
  private lowestSettlingMark(room: RoomName): MessageId | undefined {
    const marks: MessageId[] = [];
    for (const c of this.catchups.get(room)?.values() ?? []) if (c.phase === 'settling') marks.push(c.mark);
    return marks.sort(compareIds)[0];
  }

  /** Tells `room`'s members their stream has a gap herald cannot fill, with the position to continue from. */
  private async reset(room: RoomName, code: Reset['code']): Promise<void> {
    const policy = this.policyFor(room);
    const offset = code === 'history_lost' && policy ? await this.backend.position(room, policy).catch(() => undefined) : undefined;
    // Entries up to the new position are part of what the members reload.
    if (offset !== undefined) this.last.set(room, offset);
    this.metrics.historyReset(code);
    if (this.resetLog.due()) this.logger.warn({ room, code, offset }, 'history gap cannot be filled; members told to reload (herald:reset)');
    const body: Reset = { room, code, ...(offset !== undefined ? { offset } : {}) };
    this.io.local.to(room).emit(RESET_EVENT, body);
  }

  private deliver(entry: HistoryEntry): void {
    const { room } = entry;
    if (this.io.of('/').adapter.rooms.has(room)) this.last.set(room, entry.id);
    const pending = this.catchups.get(room);
    if (!pending) {
      this.io.local.to(room).emit(entry.event, entry.data, meta(entry));
      return;
    }
    this.io.local.to(room).except([...pending.keys()]).emit(entry.event, entry.data, meta(entry));
    for (const [sid, c] of pending) {
      const socket = this.io.of('/').sockets.get(sid);
      if (!socket?.rooms.has(room)) this.forget(sid, room);
      else if (c.phase === 'replaying') c.buffer.push(entry);
      else if (compareIds(entry.id, c.mark) > 0) {
        send(socket, entry);
        this.forget(sid, room);
        this.journal?.live(sid, room);
      }
    }
  }

  private roomCatchups(room: RoomName): Map<string, Catchup> {
    let m = this.catchups.get(room);
    if (!m) this.catchups.set(room, (m = new Map()));
    return m;
  }
}

function meta(e: HistoryEntry): MessageMeta {
  return { room: e.room, id: e.id, ts: e.ts };
}

/** Sends an entry to one socket (a catch-up); with recovery on, the journal records it (src/recovery/journal.ts). */
function send(socket: Socket, e: HistoryEntry): void {
  socket.emit(e.event, e.data, meta(e));
}
