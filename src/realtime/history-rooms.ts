import type { Server, Socket } from 'socket.io';
import { HeraldError } from '../errors.js';
import { compareIds, isStreamId } from '../history/ids.js';
import type { HistoryBackend, HistoryEntry, HistoryPolicy } from '../history/types.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { MessageId, MessageMeta } from '../protocol/events.js';
import type { PatternTable } from '../protocol/patterns.js';
import type { RoomName } from '../protocol/rooms.js';

export interface JoinResult {
  offset?: MessageId;
  recovered?: boolean;
}

/** Entries fetched per history read while replaying. */
const REPLAY_PAGE = 1000;

/**
 * A socket catching up on a room: live entries are held while the replay is read, then entries
 * at or below the last one it was sent are dropped until a newer one arrives (the pub/sub copy of
 * an entry the replay already returned can still be on its way).
 */
type Catchup = { phase: 'replaying'; buffer: HistoryEntry[] } | { phase: 'settling'; mark: MessageId };

/**
 * Delivery and recovery for rooms with history. Live entries reach this replica from the history
 * backend (never through the Socket.IO adapter) and go to local members; a member that subscribed
 * with `since` first gets what it missed, in order, with no gap and no duplicate against live.
 */
export class HistoryRooms {
  private readonly catchups = new Map<RoomName, Map<string, Catchup>>();
  private readonly unreachableLog = throttle(10_000);

  constructor(
    private readonly io: Server,
    readonly backend: HistoryBackend,
    private readonly policies: PatternTable<HistoryPolicy>,
    private readonly logger: Logger,
  ) {
    backend.onEntry((entry) => this.deliver(entry));
    const adapter = io.of('/').adapter;
    adapter.on('delete-room', (room: RoomName) => {
      if (this.policyFor(room)) backend.unwatch(room);
    });
  }

  policyFor(room: RoomName): HistoryPolicy | undefined {
    return this.policies.match(room);
  }

  /**
   * Joins `socket` to a history room. With `since`, replays what it missed first. Either way the
   * answer carries `offset`, the position the client has reached, to send as `since` next time if
   * it receives nothing newer; `recovered` answers a `since`. Without a reachable history the
   * socket still joins for live messages, and the answer has no `offset`.
   */
  async join(socket: Socket, room: RoomName, since: unknown, policy: HistoryPolicy): Promise<JoinResult> {
    if (since !== undefined && !isStreamId(since)) throw new HeraldError('invalid_since');
    this.forget(socket.id, room);
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
        mark = await this.replay(socket, room, since, stillWanted);
        recovered = mark !== undefined;
      }
      // A fresh subscribe, or one that could not recover, starts from the room's current position;
      // replaying from there catches what is published while that position is being read.
      mark ??= await this.replay(socket, room, await this.backend.position(room, policy), stillWanted);
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
    if (mark === undefined) this.forget(socket.id, room);
    else this.roomCatchups(room).set(socket.id, { phase: 'settling', mark });
    return {
      ...(mark !== undefined ? { offset: mark } : {}),
      ...(since !== undefined ? { recovered: recovered === true } : {}),
    };
  }

  /** Sends everything after `since`; resolves with the last id sent (or `since`), or undefined if not recoverable. */
  private async replay(socket: Socket, room: RoomName, since: MessageId, stillWanted: () => boolean): Promise<MessageId | undefined> {
    let mark = since;
    for (;;) {
      const page = await this.backend.read(room, mark, REPLAY_PAGE);
      if (!page.recovered) return undefined;
      if (!stillWanted()) return mark;
      for (const e of page.entries) {
        send(socket, e);
        mark = e.id;
      }
      if (page.entries.length < REPLAY_PAGE) return mark;
    }
  }

  /** Stops any catch-up of `socketId` in `room` (after unsubscribe or disconnect). */
  forget(socketId: string, room: RoomName): void {
    const m = this.catchups.get(room);
    m?.delete(socketId);
    if (m?.size === 0) this.catchups.delete(room);
  }

  private deliver(entry: HistoryEntry): void {
    const { room } = entry;
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

function send(socket: Socket, e: HistoryEntry): void {
  socket.emit(e.event, e.data, meta(e));
}
