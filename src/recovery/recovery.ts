import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Socket } from 'socket.io';
import type { Adapter, BroadcastOptions, Session } from 'socket.io-adapter';
import type { AdapterRecovery, Packet } from '../cluster/adapter.js';
import { userRoom, type Identity } from '../auth/identity.js';
import { HeraldError } from '../errors.js';
import { isStreamId } from '../protocol/ids.js';
import type { Logger } from '../observability/logger.js';
import { throttle } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { MessageId } from '../protocol/events.js';
import { deltaRoomOf, isInternalRoom, type RoomName } from '../protocol/rooms.js';
import { Journal, ownPosition, parseOffset, type Track } from './journal.js';
import { baseOf, decodePortable, encodePortable, portableStateOf } from './portable.js';
import { addressKey, markOf, type Amend, type CommandMark, type SessionStore, type StoredSession, type WaitingKey } from './store.js';

/**
 * Pauses before looking for a session again that was not there yet: once, 350 ms after the first
 * look, and only while the replica process that holds it may still write it (`mayStillSave`: not
 * for the clients of a killed one). A session written within 350 ms is found as it was when this
 * looked at 50, 150 and 350 ms, with one read instead of three; only the rare client that asks
 * before its session is written waits longer for it.
 */
const RETAKE_MS = [350];

/** Command marks outlive the longest a portable offset is honoured after them by this much (clocks of replicas a little apart). */
const MARK_GRACE_MS = 60_000;

/** Socket.IO packet types that carry an event (with and without binary attachments). */
const EVENT = 2;
const BINARY_EVENT = 5;

/** What a restored socket is to get back, in `socket.data` until it is connected. */
export interface RecoveryPlan {
  user: string | null;
  /** Rooms without history, rejoined as they are (their messages in between are lost). */
  rooms: RoomName[];
  granted: RoomName[];
  /** Per history room, the last id the client has; null: cannot be told (not restored: the client subscribes again). */
  history: Record<RoomName, MessageId | null>;
  /**
   * From a portable offset (portable.ts): any user's, rooms left out when `incomplete`; `heard`:
   * until when its replica heard every control command, and its socket id (the marks since apply).
   */
  portable?: { incomplete: boolean; heard?: { until: number; sid: string } };
}

/** A restore found its session, which stays where it is until the user is checked (`Recovery.check`). */
interface Pending {
  pid: string;
  offset: string;
  user: string | null;
}

const PLAN = Symbol.for('herald.recovery');
const PENDING = Symbol.for('herald.recovery.pending');

export interface RecoveryDeps {
  store: SessionStore;
  journal: Journal;
  windowMs: number;
  isHistoryRoom(room: RoomName): boolean;
  /** Who a socket is (from its token), and the rooms the backend granted it. */
  identityOf(socket: Socket): Identity;
  grantedOf(socket: Socket): RoomName[];
  /** The client address a connection counts against (TRUST_PROXY), for anonymous sessions' bound. */
  addressOf(socket: Socket): string;
  /** Whether this replica has members in `room` (its shared deliveries are kept while it does). */
  inUse(room: RoomName): boolean;
  /** Most rooms a portable offset may name (MAX_SUBSCRIPTIONS). */
  maxRooms: number;
  /**
   * Until when this replica has heard every control command (ms): now while it reaches Redis,
   * when it lost Redis during an outage. Written into portable offsets.
   */
  heardUntil(): number;
  /**
   * How long after its replica stopped hearing commands a portable offset is honoured: the
   * window, plus REDIS_OUTAGE_CLOSE_SECONDS (an outage closes its clients that much later) and
   * REDIS_TIMEOUT_SECONDS (`heardUntil` is that much before the outage was noticed).
   */
  portableWindowMs: number;
  logger: Logger;
  metrics: Metrics;
}

/**
 * Socket.IO's connection state recovery across replicas (`CONNECTION_RECOVERY_SECONDS`), as
 * herald's adapter runs it: offsets on every delivered event (`Journal`), sessions saved when a
 * connection drops and taken back, on any replica, when its client returns (`SessionStore`).
 * Only the main namespace recovers.
 *
 * Socket.IO looks a session up before any middleware runs; herald only reads it there. The
 * middlewares then run again (a session id alone restores nothing: its token must be valid, not
 * revoked, and for the same user), and only then is the session taken, once: a refused restore
 * leaves it for its owner, and of two restores with one session id one gets it (the other a
 * fresh session). The socket gets its id and its rooms: those its claims still allow, and those
 * the backend granted it. In each history room it gets what it missed, in order and once, through
 * `HistoryRooms.join` with `since`. It reports `recovered: true` only when nothing can have been
 * lost: a session in a room without history (other than its own rooms), or a history room whose
 * position cannot be told (that room is not restored), gets a fresh session id (`recovered: false`).
 */
export class Recovery implements AdapterRecovery {
  /** Saves under way, which a drain and control commands wait for. */
  private readonly saving = new Map<Promise<void>, StoredSession>();
  private readonly failureLog = throttle(10_000);

  constructor(private readonly deps: RecoveryDeps) {
    // A room's shared deliveries are kept while it has members here and while a saved session may need them.
    const sweep = setInterval(() => deps.journal.sweep(Date.now() - deps.windowMs - 60_000, deps.inUse), 30_000);
    sweep.unref();
  }

  get journal(): Journal {
    return this.deps.journal;
  }

  /**
   * The offset of `socket`'s last packet, portable (src/recovery/portable.ts): its client recovers
   * from it on any replica even when its session cannot be saved (a drain, a Redis outage).
   */
  finalOffset(socket: Socket): string {
    const { deps } = this;
    const granted = new Set(deps.grantedOf(socket));
    return encodePortable(portableStateOf(socket, deps.journal, { isHistoryRoom: (room) => deps.isHistoryRoom(room), granted, user: deps.identityOf(socket).userId ?? null, heardUntil: deps.heardUntil() }));
  }

  /**
   * Keeps a control command for restores from portable offsets, which no saved session carries
   * (portable.ts): for as long as such an offset is honoured after it.
   */
  markCommand(key: WaitingKey, mark: CommandMark, at: number): Promise<void> {
    return this.deps.store.markCommand(key, mark, at, this.deps.portableWindowMs + MARK_GRACE_MS);
  }

  stamp(adapter: Adapter, packet: Packet, opts: BroadcastOptions): Packet {
    if ((packet.type !== EVENT && packet.type !== BINARY_EVENT) || packet.id !== undefined || opts.flags?.volatile || !packet.data) return packet;
    const { seq, offset } = this.deps.journal.next();
    const meta = packet.data[2] as { room?: unknown; id?: unknown } | undefined;
    if (meta && typeof meta === 'object' && typeof meta.room === 'string' && isStreamId(meta.id) && opts.rooms.size === 1 && this.deps.isHistoryRoom(meta.room)) {
      const target = opts.rooms.values().next().value as string;
      // A room without members here: nobody received it, no session can need it.
      // A delta room's deliveries (src/history/delta.ts) are the room's shared ones too, under their own seq.
      if (target === meta.room || target === deltaRoomOf(meta.room)) {
        if (adapter.rooms.has(target)) this.deps.journal.shared(meta.room, seq, meta.id);
      } else if (adapter.sids.has(target)) this.deps.journal.sent(target, meta.room, seq, meta.id);
    }
    return { ...packet, data: [...packet.data, offset] };
  }

  /**
   * Conflation (src/realtime/conflation.ts) holds `room`'s messages for `socketId`: the room's
   * deliveries no longer count for it, and until one is released to it its position there is not
   * known (a restore then leaves the room out: `recovered: false`, never a claim that it has
   * messages it skipped).
   */
  holding(socketId: string, room: RoomName): void {
    if (this.deps.isHistoryRoom(room)) this.deps.journal.begin(socketId, room, undefined);
  }

  /**
   * A held message goes to `socketId` alone: a new offset, after everything it was sent meanwhile
   * (its client keeps the offset of the last packet it got), recorded as its own send; the room's
   * deliveries count for it again from there.
   */
  released(packet: Packet, socketId: string, room: RoomName): Packet {
    if (!packet.data) return packet;
    const { seq, offset } = this.deps.journal.next();
    const meta = packet.data[2] as { room?: unknown; id?: unknown } | undefined;
    if (meta && typeof meta === 'object' && meta.room === room && isStreamId(meta.id) && this.deps.isHistoryRoom(room)) {
      this.deps.journal.sent(socketId, room, seq, meta.id);
      this.deps.journal.live(socketId, room);
    }
    return { ...packet, data: [...packet.data, offset] };
  }

  persist(adapter: Adapter, session: Session): void {
    const socket = adapter.nsp.name === '/' ? adapter.nsp.sockets.get(session.sid) : undefined;
    if (!socket) return;
    const history: Record<RoomName, Track> = {};
    const rooms: RoomName[] = [];
    const identity = this.deps.identityOf(socket);
    const user = identity.userId ?? null;
    for (const room of session.rooms) {
      if (room === session.sid || isInternalRoom(room) || (user !== null && room === userRoom(user))) continue;
      if (this.deps.isHistoryRoom(room)) history[room] = this.deps.journal.snapshot(session.sid, room) ?? { base: undefined, sends: [] };
      else rooms.push(room);
    }
    const stored: StoredSession = {
      v: 2,
      sid: session.sid,
      epoch: this.deps.journal.epoch,
      at: Date.now(),
      user,
      ...(identity.issuedAt !== undefined ? { issuedAt: identity.issuedAt } : {}),
      ...(identity.tokenId !== undefined ? { tokenId: identity.tokenId } : {}),
      ...(user === null && identity.tokenId === undefined ? { addressKey: addressKey(this.deps.addressOf(socket)) } : {}),
      rooms,
      granted: this.deps.grantedOf(socket),
      history,
    };
    const saved = this.deps.store.save(session.pid, stored, this.deps.journal, this.deps.windowMs).then(
      (dropped) => {
        this.deps.metrics.sessionRecovery('saved');
        for (let i = 0; i < dropped; i++) this.deps.metrics.sessionRecovery('evicted');
      },
      (err: Error) => {
        this.deps.metrics.sessionRecovery('save_failed');
        if (this.failureLog.due()) this.deps.logger.warn({ client: session.sid, err: err.message }, 'could not save a session for recovery; its client will start afresh');
      },
    );
    this.saving.set(saved, stored);
    void saved.finally(() => this.saving.delete(saved));
  }

  /** Finds the session of `pid` and reads it; it is taken only once its user is checked (`check`). */
  async restore(adapter: Adapter, pid: string, offset: string): Promise<Session> {
    if (adapter.nsp.name !== '/') return null as unknown as Session;
    let stored: StoredSession | undefined;
    let failed = false;
    try {
      // The process that sent the client's last offset holds its session; asked in the same turn
      // (one write to Redis), whether it may still write one.
      const epoch = parseOffset(baseOf(offset))?.epoch;
      const alive = epoch === undefined ? Promise.resolve(true) : this.deps.store.mayStillSave(epoch).catch(() => true);
      stored = await this.deps.store.peek(pid);
      // A client that reconnects the moment its connection dropped can ask before the replica it
      // left has written the session: look again a little later before giving up on it, unless
      // that replica is gone (a kill -9: every one of its clients asks, and none will find one).
      if (!stored && (await alive)) {
        for (const wait of RETAKE_MS) {
          if (stored) break;
          await delay(wait);
          stored = await this.deps.store.peek(pid);
        }
      }
    } catch (err) {
      // Socket.IO would drop this error without a word (its debug log): the client starts afresh.
      this.lookupFailed(err);
      failed = true;
    }
    if (!stored || Date.now() - stored.at > this.deps.windowMs) {
      // Closed by a replica that could not save it (portable.ts): a fresh id, its rooms as `since`.
      const portable = decodePortable(offset, this.deps.maxRooms);
      // Older than its commands' marks are kept: the restore could undo one; not honoured.
      if (portable && !(portable.heard && Date.now() - portable.heard.until > this.deps.portableWindowMs)) {
        const plan: RecoveryPlan = { user: null, rooms: [...portable.rooms], granted: [], history: { ...portable.history }, portable: { incomplete: portable.partial, ...(portable.heard ? { heard: portable.heard } : {}) } };
        return { sid: randomBytes(15).toString('base64url'), pid, rooms: [], data: { [PLAN]: plan }, missedPackets: [] } as unknown as Session;
      }
      if (!failed) this.deps.metrics.sessionRecovery('not_found');
      return null as unknown as Session;
    }
    const pending: Pending = { pid, offset, user: stored.user };
    return { sid: stored.sid, pid, rooms: [], data: { [PENDING]: pending }, missedPackets: [] } as unknown as Session;
  }

  /**
   * Middleware, after authentication: a restored socket must belong to the same user; then its
   * session is taken, and where its state cannot be restored whole it gets a fresh session id
   * (the client sees `recovered: false`).
   */
  readonly check = (socket: Socket, next: (err?: Error) => void): void => {
    const data = socket.data as Record<symbol, unknown>;
    const pending = data[PENDING] as Pending | undefined;
    delete data[PENDING];
    if (!socket.recovered) return next();
    if (!pending) {
      // A portable offset grants what `subscribe {room, since}` would, to whoever holds the token.
      const plan = data[PLAN] as RecoveryPlan | undefined;
      if (!plan?.portable) return next();
      this.applyMarks(socket, plan).then(
        (dropped) => {
          if (dropped) {
            delete data[PLAN];
            this.deps.metrics.sessionRecovery('not_found');
            renew(socket, true);
            return next();
          }
          const whole = isWhole(plan);
          if (!whole) renew(socket, false);
          this.deps.metrics.sessionRecovery(whole ? 'recovered' : 'partial');
          next();
        },
        (err: unknown) => {
          // The marks could not be read: a command may be among them; the client starts afresh.
          delete data[PLAN];
          this.lookupFailed(err);
          renew(socket, true);
          next();
        },
      );
      return;
    }
    if (pending.user !== (this.deps.identityOf(socket).userId ?? null)) {
      this.deps.metrics.sessionRecovery('refused');
      return next(Object.assign(new Error('This session belongs to another user.'), { data: { code: 'forbidden', message: 'This session belongs to another user; connect without it.' } }));
    }
    this.accept(socket, pending).then(
      () => next(),
      (err: unknown) => {
        this.lookupFailed(err);
        renew(socket, true);
        next();
      },
    );
  };

  /**
   * Applies to a plan from a portable offset the control commands its replica did not hear (the
   * marks since `heard.until`; all kept ones for an offset without it), in the order they ran:
   * true when one was a `disconnect` (the restore starts afresh, as from a dropped session).
   */
  private async applyMarks(socket: Socket, plan: RecoveryPlan): Promise<boolean> {
    const user = this.deps.identityOf(socket).userId ?? null;
    const heard = plan.portable!.heard;
    const since = heard?.until ?? 0;
    // The user's marks are the token's (verified); the socket id's come from the offset, which
    // anyone can write: those only ever take away (a disconnect, a room left), never grant.
    const [byUser, byClient] = await Promise.all([
      user !== null ? this.deps.store.commandMarks({ user }) : new Map<string, number>(),
      heard ? this.deps.store.commandMarks({ client: heard.sid }) : new Map<string, number>(),
    ]);
    const due = [...[...byUser].map(([f, at]) => ({ f, at, verified: true })), ...[...byClient].map(([f, at]) => ({ f, at, verified: false }))]
      .filter(({ at }) => at >= since)
      .sort((a, b) => a.at - b.at);
    for (const { f, verified } of due) {
      const mark = markOf(f);
      if (!mark) continue;
      if (mark.kind === 'disconnect') return true;
      const { room } = mark;
      // A user's own room is never left nor granted (as for waiting sessions, control/waiting.ts).
      if (user !== null && room === userRoom(user)) continue;
      const had = plan.rooms.includes(room) || plan.granted.includes(room) || Object.hasOwn(plan.history, room);
      if (mark.kind === 'unsubscribe') {
        plan.rooms = plan.rooms.filter((r) => r !== room);
        plan.granted = plan.granted.filter((r) => r !== room);
        delete plan.history[room];
      } else if (!had) {
        // Subscribed while the client was away: joined on restore (granted only when the mark is
        // the token's user's; a socket id's is held to the claims), its messages since then lost.
        if (verified) plan.granted.push(room);
        plan.rooms.push(room);
        plan.portable!.incomplete = true;
      }
    }
    return false;
  }

  /** The session store could not be read (Redis) or gave a session that cannot be parsed: counted, logged, a fresh session. */
  private lookupFailed(err: unknown): void {
    const unreadable = err instanceof HeraldError && err.code === 'stored_data_invalid';
    if (unreadable) this.deps.metrics.storedDataInvalid('session');
    this.deps.metrics.sessionRecovery('lookup_failed');
    if (this.failureLog.due()) {
      this.deps.logger.warn({ code: unreadable ? err.code : undefined, err: (err as Error).message }, 'could not read a session back for recovery; its client starts afresh');
    }
  }

  private async accept(socket: Socket, pending: Pending): Promise<void> {
    const stored = await this.deps.store.take(pending.pid);
    // Taken by a concurrent restore, dropped by a control command, or expired since it was read.
    if (!stored || stored.user !== pending.user || Date.now() - stored.at > this.deps.windowMs) {
      this.deps.metrics.sessionRecovery('not_found');
      renew(socket, true);
      return;
    }
    const plan = await this.plan(stored, pending.offset);
    (socket.data as Record<symbol, unknown>)[PLAN] = plan;
    const whole = isWhole(plan);
    if (!whole) renew(socket, false);
    this.deps.metrics.sessionRecovery(whole ? 'recovered' : 'partial');
  }

  private async plan(stored: StoredSession, offset: string): Promise<RecoveryPlan> {
    const parsed = parseOffset(baseOf(offset));
    // An offset from another process: the client had nothing from the one that saved the session.
    const seq = parsed && parsed.epoch === stored.epoch ? parsed.seq : 0;
    const history: Record<RoomName, MessageId | null> = {};
    await Promise.all(
      Object.entries(stored.history).map(async ([room, track]) => {
        try {
          history[room] = (await positionOf(track, seq, (after, upTo) => this.deps.store.shared(stored.epoch, room, after, upTo))) ?? null;
        } catch (err) {
          // Joined at the room's current position; the restore reports recovered: false.
          history[room] = null;
          if (this.failureLog.due()) this.deps.logger.warn({ room, err: (err as Error).message }, 'could not read the recovery journal; the room is restored at its current position');
        }
      }),
    );
    return { user: stored.user, rooms: stored.rooms, granted: stored.granted, history };
  }

  /** Applies a control command's `amend` to the sessions waiting under `key` (see `SessionStore.amend`). */
  amendWaiting(key: WaitingKey, amend: Amend, changed: Set<string>): Promise<void> {
    return this.deps.store.amend(key, amend, changed);
  }

  /** Waits for this replica's saves under way of sessions `match` picks, at most `timeoutMs`. */
  async settle(match: (session: StoredSession) => boolean, timeoutMs: number): Promise<void> {
    const saves = [...this.saving].filter(([, s]) => match(s)).map(([p]) => p);
    if (saves.length === 0) return;
    await Promise.race([Promise.allSettled(saves), delay(timeoutMs, undefined, { ref: false })]);
  }

  /** Waits for sessions being saved (a drain, before Redis closes), at most `timeoutMs`. */
  async flush(timeoutMs: number): Promise<void> {
    await this.settle(() => true, timeoutMs);
  }
}

/** Whether a plan restores everything: history rooms only, each at a known position, none left out. */
function isWhole(plan: RecoveryPlan): boolean {
  return !plan.portable?.incomplete && plan.rooms.length === 0 && Object.values(plan.history).every((id) => id !== null);
}

/**
 * A socket made from a stored session that it may not have as it is: a new session id (the
 * client sees `recovered: false`), and with `fresh` a new socket id too, for a session it did not
 * get (the id may be another socket's).
 */
function renew(socket: Socket, fresh: boolean): void {
  if (fresh) {
    const nsp = socket.nsp as unknown as { _preConnectSockets?: Map<string, Socket> };
    nsp._preConnectSockets?.delete(socket.id);
    (socket as { id: string }).id = randomBytes(15).toString('base64url');
    nsp._preConnectSockets?.set(socket.id, socket);
  }
  (socket as unknown as { pid: string }).pid = randomBytes(15).toString('base64url');
  (socket as { recovered: boolean }).recovered = false;
}

/** The plan of a socket restored by `Recovery`, taken out of its data; undefined for others. */
export function takePlan(socket: Socket): RecoveryPlan | undefined {
  const data = socket.data as Record<symbol, RecoveryPlan | undefined> | undefined;
  const plan = data?.[PLAN];
  if (plan) delete data[PLAN];
  return plan;
}

/** Where a client at offset `seq` is in a history room: the shared deliveries read from the store, then its own sends. */
async function positionOf(track: Track, seq: number, shared: (after: number, upTo: number) => Promise<MessageId | null | undefined>): Promise<MessageId | undefined> {
  if (track.liveFrom !== undefined && seq > track.liveFrom) {
    const id = await shared(track.liveFrom, seq);
    if (id !== null) return id;
  }
  return ownPosition(track, seq);
}
