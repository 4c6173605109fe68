import type { Server, Socket } from 'socket.io';
import { ROOM_CHANNEL_FAILED } from '../cluster/bus.js';
import { HeraldError } from '../errors.js';
import { compareIds, isStreamId } from '../protocol/ids.js';
import type { HistoryBackend, HistoryEntry, HistoryPolicy } from './types.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { LAST_MAX, type MessageId } from '../protocol/events.js';
import type { PatternTable } from '../protocol/patterns.js';
import { isDeltaRoom, type RoomName } from '../protocol/rooms.js';
import type { Journal } from '../recovery/journal.js';
import { hold, markRestored, meta, restoredRooms, send, type Catchup, type Pace, type Replaying, type RoomBudget } from './catchup.js';
import { Deltas } from './delta.js';
import { GapRefill } from './refill.js';

/** A subscribe that asks for the room's newest messages while history cannot be read. */
const LAST_UNREACHABLE = "History is unreachable (Redis), so the room's newest messages cannot be sent first; not subscribed (a connection already in the room stays in it, live only). Retry the subscribe.";

export type { Pace, RoomBudget } from './catchup.js';

/** A history room's policy as `HistoryRooms` applies it: what is kept, and what a subscribe starts with. */
export interface HistoryRoomPolicy extends HistoryPolicy {
  /**
   * Newest messages a subscribe without `since` or `last` receives before its ack (the room's
   * `last=` option in HISTORY_ROOMS), at most `LAST_MAX`. @default 0
   */
  readonly last?: number;
  /** Subscribers may ask for fossil deltas (the room's ` delta` option in HISTORY_ROOMS, src/history/delta.ts). */
  readonly delta?: boolean;
}

/** Where a join starts: `since` (a client's, checked here), else the room's newest `last`. */
export interface JoinStart {
  since?: unknown;
  last?: number;
  /** Deltas asked for (`delta: "fossil"`): refused with `not_found` unless the room has the ` delta` option. */
  delta?: boolean;
  /** The subscribing client's allowance of new rooms; none: may create any (the control API, a gap's reset). */
  budget?: RoomBudget;
}

export interface JoinResult {
  offset?: MessageId;
  recovered?: boolean;
}

/** Entries fetched per history read while replaying. */
const REPLAY_PAGE = 1000;
/**
 * Delivery and recovery for rooms with history. Live entries reach this replica from the history
 * backend (never through the Socket.IO adapter) and go to local members; a member that subscribed
 * with `since` first gets what it missed, in order, with no gap and no duplicate against live.
 *
 * Live delivery survives the bus: per local room herald remembers the last entry it delivered,
 * and when the backend reports a gap it refills each room from there (`GapRefill`,
 * src/history/refill.ts), or tells the members to reload (`herald:reset`).
 */
export class HistoryRooms {
  private readonly catchups = new Map<RoomName, Map<string, Catchup>>();
  /** Per local history room, the id of the last entry delivered here. */
  private readonly last = new Map<RoomName, MessageId>();
  private readonly gaps: GapRefill;
  private readonly deltas: Deltas;
  private readonly unreachableLog = throttle(10_000);
  private readonly watchLog = throttle(10_000);

  constructor(
    private readonly io: Server,
    readonly backend: HistoryBackend,
    private readonly policies: PatternTable<HistoryRoomPolicy>,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    /** With connection recovery on: told what each socket was sent alone and when it went live. */
    private readonly journal?: Journal,
    private readonly pace: Pace = () => undefined,
    /** Whether a room's messages are conflated for slow connections (CONFLATE_ROOMS). */
    private readonly conflated: (room: RoomName) => boolean = () => false,
  ) {
    this.deltas = new Deltas(io, metrics);
    this.gaps = new GapRefill(
      {
        io,
        backend,
        policyFor: (room) => this.policyFor(room),
        lastDelivered: (room) => this.last.get(room) ?? this.lowestSettlingMark(room),
        reloadFrom: (room, offset) => this.last.set(room, offset),
        restart: (room) => this.deltas.restart(room),
        deliver: (entry) => this.deliver(entry),
        accept: (entry) => this.accept(entry),
      },
      logger,
      metrics,
    );
    backend.onEntry((entry) => this.accept(entry));
    backend.onGap((resumed) => this.gaps.lost(resumed));
    const adapter = io.of('/').adapter;
    adapter.on('delete-room', (room: RoomName) => {
      if (isDeltaRoom(room) || !this.policyFor(room)) return;
      this.deltas.dropRoom(room);
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
   *
   * A room that has no stream yet gets one (its position marker) charged to `start.budget`; with
   * none left the join is undone and refused with `too_many_new_rooms`.
   */
  async join(socket: Socket, room: RoomName, policy: HistoryRoomPolicy, start: JoinStart = {}): Promise<JoinResult> {
    const asked = start.since;
    if (asked !== undefined && !isStreamId(asked)) throw new HeraldError('invalid_since');
    if (start.delta && !policy.delta) throw new HeraldError('not_found', `Room "${room}" sends no deltas (see the delta option of HISTORY_ROOMS); subscribe without "delta".`);
    let since: MessageId | undefined = asked;
    const tail = since === undefined ? (start.last ?? policy.last ?? 0) : 0;
    const wasIn = socket.rooms.has(room);
    // Already in the room (connection recovery restored it from the position its client had, and
    // the client re-subscribes with `since` as the explicit contract says, recovered or not):
    // what this socket was already sent is not sent again. Its restore may still be replaying:
    // this join supersedes it (the restore sends nothing more once it is not the socket's catch-up).
    const inRoom = wasIn || this.catchups.get(room)?.has(socket.id) === true;
    const had = inRoom && restoredRooms(socket)?.has(room) ? this.positionOf(socket.id, room) : undefined;
    const ahead = since !== undefined && had !== undefined && compareIds(had, since) > 0;
    if (ahead) since = had;
    this.forget(socket.id, room);
    // Whole messages from here on: the catch-up is whole, and deltas resume only after it (`want` below).
    this.deltas.stop(socket.id, room);
    // Sent `had` already, but maybe not received: the journal knows it only for offsets past now.
    if (ahead) this.journal?.beginAfter(socket.id, room, had);
    else this.journal?.begin(socket.id, room, undefined);
    const catchup: Replaying = { phase: 'replaying', buffer: [], letGo: false };
    this.roomCatchups(room).set(socket.id, catchup);
    await socket.join(room);
    // Live entries must be arriving before history is read, or one published in between is lost;
    // a replica that cannot hear the room at all must not answer that the socket is subscribed.
    try {
      await this.backend.watch(room);
    } catch (err) {
      this.metrics.roomSubscribeFailed('history');
      if (this.watchLog.due()) this.logger.warn({ room, err: (err as Error).message }, 'could not subscribe to a history room\'s channel; subscribe refused (unavailable)');
      if (this.catchups.get(room)?.get(socket.id) === catchup) await this.undo(socket, room, wasIn);
      throw new HeraldError('unavailable', ROOM_CHANNEL_FAILED, { cause: err });
    }
    const stillWanted = () => socket.connected && socket.rooms.has(room) && this.catchups.get(room)?.get(socket.id) === catchup;

    let mark: MessageId | undefined;
    let recovered: boolean | undefined;
    try {
      if (since !== undefined) {
        const r = await this.replay(socket, room, since, catchup, stillWanted);
        recovered = r.recovered;
        if (recovered) mark = r.mark;
      } else if (tail > 0) {
        mark = await this.replayLatest(socket, room, tail, catchup, stillWanted);
      }
      // A fresh subscribe (into a room with no entries to send), or one that could not recover,
      // starts from the room's current position; replaying from there catches what is published
      // while that position is being read.
      if (mark === undefined) {
        const r = await this.replay(socket, room, await this.position(room, policy, start.budget), catchup, stillWanted);
        if (r.recovered) mark = r.mark;
      }
    } catch (err) {
      if (err instanceof HeraldError) {
        // Refused: the subscribe fails and leaves the socket as it was.
        if (this.catchups.get(room)?.get(socket.id) === catchup) await this.undo(socket, room, wasIn);
        throw err;
      }
      // History unreachable. Asked for the room's newest messages first (`last`, or the room's
      // `last=`): those are the state the client starts from, and live messages alone would
      // leave it without them and without a word; refused, so that it asks again.
      if (since === undefined && tail > 0) {
        if (this.catchups.get(room)?.get(socket.id) === catchup) await this.undo(socket, room, wasIn);
        if (this.unreachableLog.due()) this.logger.warn({ room, client: socket.id, err: (err as Error).message }, 'history unreachable on subscribe with last; subscribe refused (unavailable)');
        throw new HeraldError('unavailable', LAST_UNREACHABLE, { cause: err });
      }
      // Otherwise joined for live messages only.
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
    if (start.delta) this.deltas.want(socket.id, room);
    return {
      ...(mark !== undefined ? { offset: mark } : {}),
      ...(since !== undefined ? { recovered: recovered === true } : {}),
    };
  }

  /**
   * The room's position, creating its stream if it has none and `budget` (when given) allows.
   * Counted: rooms created, and those refused (`too_many_new_rooms`).
   */
  private async position(room: RoomName, policy: HistoryRoomPolicy, budget: RoomBudget | undefined): Promise<MessageId> {
    const mayCreate = budget?.take() ?? true;
    let at: { id: MessageId; created: boolean } | undefined;
    try {
      at = await this.backend.position(room, policy, mayCreate);
    } finally {
      if (budget && mayCreate && at?.created !== true) budget.giveBack();
    }
    if (!at) {
      this.metrics.historyRoomCreation('refused');
      throw new HeraldError('too_many_new_rooms');
    }
    if (at.created) this.metrics.historyRoomCreation('created');
    return at.id;
  }

  /** Takes back a join that was refused: out of the room if it was not in before, else live as before. */
  private async undo(socket: Socket, room: RoomName, wasIn: boolean): Promise<void> {
    this.forget(socket.id, room);
    if (wasIn) {
      this.journal?.live(socket.id, room);
      return;
    }
    this.journal?.forget(socket.id, room);
    await socket.leave(room);
  }

  /**
   * Sends everything after `since`, at the pace the socket takes it. Resolves with the last id
   * sent (or `since`), and whether the history still held every entry after `since` (if not, the
   * entries sent before a page found it trimmed were still in order and after `since`). It ends
   * with a read that started after the last held live entry was let go, so the held ones cover
   * the rest.
   */
  private async replay(socket: Socket, room: RoomName, since: MessageId, catchup: Replaying, stillWanted: () => boolean): Promise<{ mark: MessageId; recovered: boolean }> {
    let mark = since;
    // Superseded already (a newer subscribe of this socket to this room): its journal track is the newer one's.
    if (!stillWanted()) return { mark, recovered: true };
    this.journal?.startAt(socket.id, room, since);
    for (;;) {
      catchup.letGo = false;
      const page = await this.backend.read(room, mark, REPLAY_PAGE);
      if (!page.recovered) return { mark, recovered: false };
      for (const e of page.entries) {
        const waiting = this.pace(socket);
        if (waiting) await waiting;
        if (!stillWanted()) return { mark, recovered: true };
        send(socket, e);
        mark = e.id;
      }
      if (page.entries.length < REPLAY_PAGE && !catchup.letGo) return { mark, recovered: true };
    }
  }

  /**
   * Sends the room's newest `count` entries, then whatever was published while they were read.
   * Resolves with the last id sent, or undefined when the room has no entries yet.
   */
  private async replayLatest(socket: Socket, room: RoomName, count: number, catchup: Replaying, stillWanted: () => boolean): Promise<MessageId | undefined> {
    const entries = await this.backend.latest(room, Math.min(count, LAST_MAX));
    const newest = entries.at(-1)?.id;
    if (newest === undefined || !stillWanted()) return newest;
    for (const e of entries) send(socket, e);
    // If a small room was trimmed past `newest` before this read (a burst of publishes), what
    // came after it is in the catch-up buffer: `watch` had resolved before `latest` read, so every
    // entry newer than `newest` reaches `deliver` while this socket is replaying.
    return (await this.replay(socket, room, newest, catchup, stillWanted)).mark;
  }

  /**
   * Connection recovery restores `room` into `socket` from the position its client had (its
   * `join` with that `since` follows): a later subscribe with `since` there continues after what
   * this socket was sent (see `join`), whether the session was restored whole or in part.
   */
  restoring(socket: Socket, room: RoomName): void {
    markRestored(socket, room);
  }

  /** `socket` left `room` (an unsubscribe): no catch-up, and nothing of its restore, is kept. */
  left(socket: Socket, room: RoomName): void {
    this.forget(socket.id, room);
    this.deltas.stop(socket.id, room);
    restoredRooms(socket)?.delete(room);
  }

  /** `socketId` is disconnecting: nothing of it is kept for `room`. */
  closing(socketId: string, room: RoomName): void {
    this.forget(socketId, room);
    this.deltas.closing(socketId, room);
  }

  /** Stops any catch-up of `socketId` in `room` (after unsubscribe or disconnect). */
  forget(socketId: string, room: RoomName): void {
    const m = this.catchups.get(room);
    m?.delete(socketId);
    if (m?.size === 0) this.catchups.delete(room);
  }

  /**
   * The last entry of `room` sent to a socket in it: its own catch-up's (the journal's, which a
   * recovered socket always has), or once live, the room's (unless conflation holds its messages
   * back: then its own).
   */
  private positionOf(socketId: string, room: RoomName): MessageId | undefined {
    const c = this.catchups.get(room)?.get(socketId);
    const own = this.journal?.lastSent(socketId, room);
    if (c?.phase === 'settling') return c.mark;
    // Catching up, or held back by conflation: the room's last delivery did not reach it.
    if (c || this.journal?.notLive(socketId, room)) return own;
    const live = this.last.get(room);
    return live !== undefined && (own === undefined || compareIds(live, own) > 0) ? live : own;
  }


  /**
   * A live entry from the backend: held while its room awaits a refill (from the moment the bus
   * was lost: the first entries after a reconnect can arrive before the reconnect is reported),
   * dropped if a refill already delivered it.
   */
  private accept(entry: HistoryEntry): void {
    if (this.gaps.holds(entry)) return;
    const last = this.last.get(entry.room);
    if (last !== undefined && compareIds(entry.id, last) <= 0) return;
    this.deliver(entry);
  }

  /** Where to refill a room from before anything was delivered in it: its least advanced settling socket. */
  private lowestSettlingMark(room: RoomName): MessageId | undefined {
    const marks: MessageId[] = [];
    for (const c of this.catchups.get(room)?.values() ?? []) if (c.phase === 'settling') marks.push(c.mark);
    return marks.sort(compareIds)[0];
  }

  private deliver(entry: HistoryEntry): void {
    const { room } = entry;
    if (this.io.of('/').adapter.rooms.has(room)) this.last.set(room, entry.id);
    const pending = this.catchups.get(room);
    const waiting = pending ? this.settle(entry, pending) : undefined;
    const delta = this.policyFor(room)?.delta === true;
    const deltaRoom = delta ? this.deltas.receiving(room) : undefined;
    const except = [...(waiting ?? []), ...(deltaRoom !== undefined ? [deltaRoom] : [])];
    // With nobody left out, the room's one publish (the uWS topic's fast path), whoever settled just now included.
    if (except.length === 0) this.io.local.to(room).emit(entry.event, entry.data, meta(entry));
    // Left out are the delta subscribers (and catch-ups): the whole message goes through Socket.IO's
    // walk over the room's members, unless none of them takes it (every socket and event stream
    // in the room gets deltas, or holds it in a catch-up). In a conflated room it always goes: on
    // its way, conflation takes slow delta subscribers out of the delta room and holds it for them.
    else if (deltaRoom === undefined || this.conflated(room) || this.deltas.wholeTaken(room, deltaRoom, waiting ?? []))
      this.io.local.to(room).except(except).emit(entry.event, entry.data, meta(entry));
    if (delta) this.deltas.deliver(entry, (sid) => this.catchups.get(room)?.has(sid) === true);
  }

  /**
   * Before `entry` goes to its room: the sockets catching up there that do not take it with the
   * room (those replaying hold it; those settling already had it, from their replay). A settling
   * socket for which it is the first entry past its mark goes live now and takes it with the room,
   * in the same single publish as every other member (so the first live entry after a subscribe is
   * not written to each new subscriber alone); the journal counts the room's deliveries for it from
   * this one on.
   */
  private settle(entry: HistoryEntry, pending: Map<string, Catchup>): string[] {
    const { room } = entry;
    const waiting: string[] = [];
    for (const [sid, c] of pending) {
      const socket = this.io.of('/').sockets.get(sid);
      if (!socket?.rooms.has(room)) this.forget(sid, room);
      else if (c.phase === 'replaying') {
        hold(c, entry);
        waiting.push(sid);
      } else if (compareIds(entry.id, c.mark) > 0) {
        this.forget(sid, room);
        this.journal?.live(sid, room);
      } else waiting.push(sid);
    }
    return waiting;
  }

  private roomCatchups(room: RoomName): Map<string, Catchup> {
    let m = this.catchups.get(room);
    if (!m) this.catchups.set(room, (m = new Map()));
    return m;
  }
}

