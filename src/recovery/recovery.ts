import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Socket } from 'socket.io';
import type { Adapter, BroadcastOptions, Session } from 'socket.io-adapter';
import type { AdapterRecovery, Packet } from '../cluster/adapter.js';
import { userRoom } from '../auth/identity.js';
import { isStreamId } from '../history/ids.js';
import type { Logger } from '../observability/logger.js';
import { throttle } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { MessageId } from '../protocol/events.js';
import { isConnectionRoom, type RoomName } from '../protocol/rooms.js';
import { Journal, parseOffset, type Track } from './journal.js';
import { baseOf, decodePortable } from './portable.js';
import type { SessionStore, StoredSession } from './store.js';

/** Pauses before looking for a session again that was not there yet (at most 350 ms in all). */
const RETAKE_MS = [50, 100, 200];

/** Socket.IO packet types that carry an event (with and without binary attachments). */
const EVENT = 2;
const BINARY_EVENT = 5;

/** What a restored socket is to get back, in `socket.data` until it is connected. */
export interface RecoveryPlan {
  user: string | null;
  /** Rooms without history, rejoined as they are (their messages in between are lost). */
  rooms: RoomName[];
  granted: RoomName[];
  /** Per history room, the last id the client has; null: cannot be told (joined at the current position). */
  history: Record<RoomName, MessageId | null>;
  /** From a portable offset (portable.ts): any user's, rooms left out when `incomplete`. */
  portable?: { incomplete: boolean };
}

const PLAN = Symbol.for('herald.recovery');

export interface RecoveryDeps {
  store: SessionStore;
  journal: Journal;
  windowMs: number;
  isHistoryRoom(room: RoomName): boolean;
  /** The user a connected socket belongs to (null: anonymous), and the rooms the backend granted it. */
  userOf(socket: Socket): string | null;
  grantedOf(socket: Socket): RoomName[];
  /** Whether this replica has members in `room` (its shared deliveries are kept while it does). */
  inUse(room: RoomName): boolean;
  /** Most rooms a portable offset may name (MAX_SUBSCRIPTIONS). */
  maxRooms: number;
  logger: Logger;
  metrics: Metrics;
}

/**
 * Socket.IO's connection state recovery across replicas (`CONNECTION_RECOVERY_SECONDS`), as
 * herald's adapter runs it: offsets on every delivered event (`Journal`), sessions saved when a
 * connection drops and taken back, on any replica, when its client returns (`SessionStore`).
 *
 * A restored socket has its id and, once authenticated again (the middleware re-runs: a session
 * id alone restores nothing; its token must be valid, not revoked, and for the same user), its
 * rooms: those its claims still allow, and those the backend granted it. In each history room it
 * gets what it missed, in order and once, through `HistoryRooms.join` with `since`. It reports
 * `recovered: true` only when nothing can have been lost: a session in a room without history
 * (other than its own rooms), or a history room whose position cannot be told, gets its rooms
 * back but a fresh session id, so the client sees `recovered: false`.
 */
export class Recovery implements AdapterRecovery {
  /** Saves under way, which a drain waits for. */
  private readonly saving = new Set<Promise<void>>();
  private readonly failureLog = throttle(10_000);

  constructor(private readonly deps: RecoveryDeps) {
    // A room's shared deliveries are kept while it has members here and while a saved session may need them.
    const sweep = setInterval(() => deps.journal.sweep(Date.now() - deps.windowMs - 60_000, deps.inUse), 30_000);
    sweep.unref();
  }

  get journal(): Journal {
    return this.deps.journal;
  }

  stamp(adapter: Adapter, packet: Packet, opts: BroadcastOptions): Packet {
    if ((packet.type !== EVENT && packet.type !== BINARY_EVENT) || packet.id !== undefined || opts.flags?.volatile || !packet.data) return packet;
    const { seq, offset } = this.deps.journal.next();
    const meta = packet.data[2] as { room?: unknown; id?: unknown } | undefined;
    if (meta && typeof meta === 'object' && typeof meta.room === 'string' && isStreamId(meta.id) && opts.rooms.size === 1 && this.deps.isHistoryRoom(meta.room)) {
      const target = opts.rooms.values().next().value as string;
      if (target === meta.room) this.deps.journal.shared(meta.room, seq, meta.id);
      else if (adapter.sids.has(target)) this.deps.journal.sent(target, meta.room, seq, meta.id);
    }
    return { ...packet, data: [...packet.data, offset] };
  }

  persist(adapter: Adapter, session: Session): void {
    const socket = adapter.nsp.sockets.get(session.sid);
    if (!socket) return;
    const history: Record<RoomName, Track> = {};
    const rooms: RoomName[] = [];
    const user = this.deps.userOf(socket);
    for (const room of session.rooms) {
      if (room === session.sid || isConnectionRoom(room) || (user !== null && room === userRoom(user))) continue;
      if (this.deps.isHistoryRoom(room)) {
        const track = this.deps.journal.track(session.sid, room);
        history[room] = track ? { ...track, sends: [...track.sends] } : { base: undefined, sends: [] };
      } else rooms.push(room);
    }
    const stored: StoredSession = {
      v: 1,
      sid: session.sid,
      epoch: this.deps.journal.epoch,
      at: Date.now(),
      user,
      rooms,
      granted: this.deps.grantedOf(socket),
      history,
    };
    const saved = this.deps.store.save(session.pid, stored, this.deps.journal, this.deps.windowMs).then(
      () => this.deps.metrics.sessionRecovery('saved'),
      (err: Error) => {
        this.deps.metrics.sessionRecovery('save_failed');
        if (this.failureLog.due()) this.deps.logger.warn({ client: session.sid, err: err.message }, 'could not save a session for recovery; its client will start afresh');
      },
    );
    this.saving.add(saved);
    void saved.finally(() => this.saving.delete(saved));
  }

  async restore(_adapter: Adapter, pid: string, offset: string): Promise<Session> {
    let stored = await this.deps.store.take(pid);
    // A client that reconnects the moment its connection dropped can ask before the replica it
    // left has written the session: look again a little later before giving up on it.
    for (const wait of RETAKE_MS) {
      if (stored) break;
      await delay(wait);
      stored = await this.deps.store.take(pid);
    }
    if (!stored || Date.now() - stored.at > this.deps.windowMs) {
      // Closed by a replica that could not save it (portable.ts): a fresh id, its rooms as `since`.
      const portable = decodePortable(offset, this.deps.maxRooms);
      if (portable) {
        const plan: RecoveryPlan = { user: null, rooms: [...portable.rooms], granted: [], history: { ...portable.history }, portable: { incomplete: portable.partial } };
        return { sid: randomBytes(15).toString('base64url'), pid, rooms: [], data: { [PLAN]: plan }, missedPackets: [] } as unknown as Session;
      }
      this.deps.metrics.sessionRecovery('not_found');
      return null as unknown as Session;
    }
    const parsed = parseOffset(baseOf(offset));
    // An offset from another process: the client had nothing from the one that saved the session.
    const seq = parsed && parsed.epoch === stored.epoch ? parsed.seq : 0;
    const history: Record<RoomName, MessageId | null> = {};
    for (const [room, track] of Object.entries(stored.history)) {
      history[room] = (await positionOf(track, seq, (after, upTo) => this.deps.store.shared(stored.epoch, room, after, upTo))) ?? null;
    }
    const plan: RecoveryPlan = { user: stored.user, rooms: stored.rooms, granted: stored.granted, history };
    return { sid: stored.sid, pid, rooms: [], data: { [PLAN]: plan }, missedPackets: [] } as unknown as Session;
  }

  /**
   * Middleware, after authentication: a restored socket must belong to the same user. Where its
   * state cannot be restored whole, it gets a fresh session id (the client sees `recovered: false`).
   */
  readonly check = (socket: Socket, next: (err?: Error) => void): void => {
    const plan = planOf(socket);
    if (!socket.recovered || !plan) return next();
    if (!plan.portable && plan.user !== this.deps.userOf(socket)) {
      this.deps.metrics.sessionRecovery('refused');
      delete (socket.data as Record<symbol, unknown>)[PLAN];
      return next(Object.assign(new Error('This session belongs to another user.'), { data: { code: 'forbidden', message: 'This session belongs to another user; connect without it.' } }));
    }
    const whole = !plan.portable?.incomplete && plan.rooms.length === 0 && Object.values(plan.history).every((id) => id !== null);
    // A new session id: the client sees `recovered: false` (it compares ids). The socket stays
    // `recovered` here, so that a client re-subscribing with `since` is not sent again what the
    // restore already sent it (`HistoryRooms.join`).
    if (!whole) (socket as unknown as { pid: string }).pid = randomBytes(15).toString('base64url');
    this.deps.metrics.sessionRecovery(whole ? 'recovered' : 'partial');
    next();
  };

  /** Waits for sessions being saved (a drain, before Redis closes), at most `timeoutMs`. */
  async flush(timeoutMs: number): Promise<void> {
    if (this.saving.size === 0) return;
    await Promise.race([Promise.allSettled([...this.saving]), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }
}

/** The plan of a socket restored by `Recovery.restore`, taken out of its data; undefined for others. */
export function takePlan(socket: Socket): RecoveryPlan | undefined {
  const plan = planOf(socket);
  if (plan) delete (socket.data as Record<symbol, unknown>)[PLAN];
  return plan;
}

function planOf(socket: Socket): RecoveryPlan | undefined {
  return (socket.data as Record<symbol, RecoveryPlan | undefined> | undefined)?.[PLAN];
}

/** `positionOf` (journal.ts) with the shared deliveries read from the store. */
async function positionOf(track: Track, seq: number, shared: (after: number, upTo: number) => Promise<MessageId | null | undefined>): Promise<MessageId | undefined> {
  let own: [number, MessageId] | undefined;
  for (const s of track.sends) if (s[0] <= seq) own = s;
  if (track.liveFrom !== undefined && seq > track.liveFrom) {
    const id = await shared(track.liveFrom, seq);
    if (id === undefined) return undefined;
    if (id !== null) return id;
  }
  return own?.[1] ?? track.base;
}

