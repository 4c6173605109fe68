import { createDelta } from 'fossil-delta';
import type { Namespace, Server } from 'socket.io';
import type { Metrics } from '../observability/metrics.js';
import type { MessageId, MessageMeta } from '../protocol/events.js';
import { deltaRoomOf, type RoomName } from '../protocol/rooms.js';
import { meta } from './catchup.js';
import type { HistoryEntry } from './types.js';

/** The second argument of a delta: the message's meta plus `base`, the id of the message it applies to. */
export interface DeltaMeta extends MessageMeta {
  base: MessageId;
}

/** The previous message this replica delivered in a delta room: what the next delta is computed against. */
interface Previous {
  readonly id: MessageId;
  /** Its payload as JSON, UTF-8. */
  readonly text: Uint8Array;
}

/**
 * Fossil deltas for the subscribers of delta rooms (HISTORY_ROOMS ` delta`) that asked for them
 * (`subscribe {room, delta: "fossil"}`), on one replica. The format is the one Centrifugo's
 * clients apply (docs/reference/deltas.md).
 *
 * Per room, the subscribers that get deltas sit in one more Socket.IO room (`deltaRoomOf`), so
 * each message is diffed **once** per replica, against the previous message this replica
 * delivered in the room, and the same bytes go to every one of them through the same path as any
 * room broadcast (the uWS topic and its batching). The whole message goes to the room's other
 * members as before; while a room has delta subscribers here, that one is sent with `except` (the
 * delta room), so through Socket.IO's walk over the room's members rather than the uWS topic.
 *
 * Never a delta on the wrong base: a socket enters the delta room only right after this replica
 * delivered it a whole message through the room (it had asked and was not catching up), so it
 * has the base of the next delta; each delta names that base (`meta.base`), which the client
 * checks against the last id it has before applying anything. A subscribe (first message, `last`,
 * `since`, connection recovery), a `herald:reset` and a new connection (another replica, a slow
 * consumer that was closed) all start with whole messages again. Ids are the room's stream ids,
 * the same on every replica for the same payload, so a delta can only apply to the payload it
 * was computed against, whichever replica delivered the base.
 *
 * Conflation (CONFLATE_ROOMS, src/realtime/conflation.ts) never holds a delta: a held delta would
 * be written after the ones it replaced, on a base the client never got. A delta subscriber that
 * is held back (`heldBack`) leaves the delta room and waits like a new one: conflation holds the
 * room's whole messages for it, and it enters the delta room again only once the whole message it
 * is written is this replica's previous one (`released`), or after a later whole one it received.
 *
 * Memory: one previous payload (at most PUBLISH_MAX_BYTES) per room that has delta subscribers
 * here (in it or waiting to enter it), dropped when it has none; plus a socket id per waiting
 * subscriber (twice while conflation holds its message), dropped at the room's next message it
 * receives or when it leaves.
 */
export class Deltas {
  private readonly previous = new Map<RoomName, Previous>();
  private heldBytes = 0;
  /** Per room, sockets that asked for deltas and receive whole messages until the next one. */
  private readonly waiting = new Map<RoomName, Set<string>>();
  /** Per room, waiting sockets whose whole messages conflation holds: they did not receive the room's last one. */
  private readonly held = new Map<RoomName, Set<string>>();

  constructor(
    private readonly io: Server,
    private readonly metrics: Metrics,
  ) {
    registry.set(io.of('/'), this);
  }

  /** `socketId`, subscribed to `room` and asking for deltas, receives them after the room's next whole message. */
  want(socketId: string, room: RoomName): void {
    let set = this.waiting.get(room);
    if (!set) this.waiting.set(room, (set = new Set()));
    set.add(socketId);
  }

  /** `socketId` receives whole messages of `room` from now on (a new subscribe, an unsubscribe). */
  stop(socketId: string, room: RoomName): void {
    this.unwait(socketId, room);
    const socket = this.io.of('/').sockets.get(socketId);
    if (socket?.rooms.has(deltaRoomOf(room))) void socket.leave(deltaRoomOf(room));
  }

  /** `socketId` is disconnecting (Socket.IO takes it out of every room itself). */
  closing(socketId: string, room: RoomName): void {
    this.unwait(socketId, room);
  }

  /**
   * Conflation holds `room`'s messages for `socketId` from now on (the one being delivered
   * first): a delta subscriber leaves the delta room and receives whole messages until it has the
   * one the next delta applies to. Call before the room's delta subscribers are sent the message.
   * Nothing for a socket that did not ask for deltas.
   */
  heldBack(socketId: string, room: RoomName): void {
    const socket = this.io.of('/').sockets.get(socketId);
    if (socket?.rooms.has(deltaRoomOf(room))) void socket.leave(deltaRoomOf(room));
    else if (!this.waiting.get(room)?.has(socketId)) return;
    this.want(socketId, room);
    let set = this.held.get(room);
    if (!set) this.held.set(room, (set = new Set()));
    set.add(socketId);
  }

  /**
   * Conflation wrote `socketId` the held message `id` of `room`, whole: if it is this replica's
   * previous message there, the socket has the next delta's base and receives deltas again.
   */
  released(socketId: string, room: RoomName, id: MessageId | undefined): void {
    if (!this.unhold(socketId, room)) return;
    const socket = this.io.of('/').sockets.get(socketId);
    if (id === undefined || this.previous.get(room)?.id !== id || !this.waiting.get(room)?.has(socketId) || !socket?.rooms.has(room)) return;
    this.unwait(socketId, room);
    void socket.join(deltaRoomOf(room));
  }

  /** `room`'s members are told to reload (`herald:reset`): every delta subscriber's next message is whole. */
  restart(room: RoomName): void {
    this.forgetPrevious(room);
    const target = deltaRoomOf(room);
    const members = this.io.of('/').adapter.rooms.get(target);
    if (!members) return;
    for (const id of [...members]) {
      const socket = this.io.of('/').sockets.get(id);
      if (!socket) continue;
      void socket.leave(target);
      this.want(id, room);
    }
  }

  /** `room` has no local member left. */
  dropRoom(room: RoomName): void {
    this.forgetPrevious(room);
    this.waiting.delete(room);
    this.held.delete(room);
  }

  /** The room whose whole messages must leave out the delta subscribers; undefined when it has none here. */
  receiving(room: RoomName): string | undefined {
    const target = deltaRoomOf(room);
    return this.io.of('/').adapter.rooms.has(target) ? target : undefined;
  }

  /**
   * Whether a member of `room` here (a socket or an event stream: src/sse/hub.ts adds streams to
   * the adapter's rooms) is neither in `deltaRoom` nor in `skip`, so takes a whole message. Checked
   * member by member: a count could not tell a delta subscriber from a socket that left the room
   * and not yet its delta room.
   */
  wholeTaken(room: RoomName, deltaRoom: string, skip: readonly string[]): boolean {
    const rooms = this.io.of('/').adapter.rooms;
    const members = rooms.get(room);
    if (!members) return false;
    const deltas = rooms.get(deltaRoom);
    if (!deltas || deltas.size + skip.length < members.size) return true;
    for (const id of members) if (!deltas.has(id) && !skip.includes(id)) return true;
    return false;
  }

  /**
   * After `entry` went whole to the room's other members: sends it to the delta subscribers
   * (a delta against the previous message, or whole when there is none or the delta is not
   * smaller), then moves the waiting ones that received it whole into the delta room.
   * `catchingUp`: a socket still replaying or settling, which did not receive it through the room.
   */
  deliver(entry: HistoryEntry, catchingUp: (socketId: string) => boolean): void {
    const { room } = entry;
    const nsp = this.io.of('/');
    const target = deltaRoomOf(room);
    const members = nsp.adapter.rooms.get(target);
    const waiting = this.waiting.get(room);
    if (!members && !waiting) {
      this.forgetPrevious(room);
      return;
    }
    const text = utf8.encode(JSON.stringify(entry.data) ?? 'null');
    if (members && members.size > 0) {
      const prev = this.previous.get(room);
      let kind: 'delta' | 'first' | 'larger' = 'first';
      if (prev) {
        const delta = deltaString(createDelta(prev.text, text));
        // What goes on the wire: the delta as a JSON string, against the payload's JSON.
        const wire = utf8Length(JSON.stringify(delta)) + BASE_FIELD + prev.id.length;
        if (wire < text.length) {
          const m: DeltaMeta = { ...meta(entry), base: prev.id };
          nsp.local.to(target).emit(entry.event, delta, m);
          this.metrics.deltaSent('delta', members.size, text.length - wire);
          kind = 'delta';
        } else kind = 'larger';
      }
      if (kind !== 'delta') {
        nsp.local.to(target).emit(entry.event, entry.data, meta(entry));
        this.metrics.deltaSent(kind, members.size, 0);
      }
    }
    this.heldBytes += text.length - (this.previous.get(room)?.text.length ?? 0);
    this.previous.set(room, { id: entry.id, text });
    this.metrics.deltaHeld(this.previous.size, this.heldBytes);
    if (!waiting) return;
    const held = this.held.get(room);
    for (const id of waiting) {
      if (catchingUp(id) || held?.has(id)) continue;
      waiting.delete(id);
      const socket = nsp.sockets.get(id);
      if (socket?.rooms.has(room)) void socket.join(target);
    }
    if (waiting.size === 0) this.waiting.delete(room);
  }

  private forgetPrevious(room: RoomName): void {
    const prev = this.previous.get(room);
    if (!prev) return;
    this.previous.delete(room);
    this.heldBytes -= prev.text.length;
    this.metrics.deltaHeld(this.previous.size, this.heldBytes);
  }

  private unwait(socketId: string, room: RoomName): void {
    this.unhold(socketId, room);
    const set = this.waiting.get(room);
    if (!set?.delete(socketId)) return;
    if (set.size === 0) this.waiting.delete(room);
  }

  private unhold(socketId: string, room: RoomName): boolean {
    const set = this.held.get(room);
    if (!set?.delete(socketId)) return false;
    if (set.size === 0) this.held.delete(room);
    return true;
  }
}

/** The delta rooms of a namespace's server, for conflation (src/realtime/conflation.ts). */
const registry = new WeakMap<Namespace, Deltas>();

/** The delta rooms of `nsp`, if its server has any. */
export function deltasOf(nsp: Namespace): Deltas | undefined {
  return registry.get(nsp);
}

/** `,"base":""` in the delta's meta. */
const BASE_FIELD = 10;

const utf8 = new TextEncoder();

function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/**
 * A delta's bytes as a string of code points 0–255, one per byte (latin1). A fossil delta can cut
 * a multi-byte UTF-8 character in two (its copies and inserts are byte ranges), so decoding it as
 * UTF-8 would lose bytes; one character per byte round-trips through JSON and any Socket.IO parser.
 */
export function deltaString(delta: Uint8Array): string {
  return Buffer.from(delta.buffer, delta.byteOffset, delta.byteLength).toString('latin1');
}
