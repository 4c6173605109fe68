import type { Socket } from 'socket.io';
import type { Adapter, BroadcastOptions } from 'socket.io-adapter';
import type { AdapterConflation, LocalDelivery, Packet } from '../cluster/adapter.js';
import type { Metrics } from '../observability/metrics.js';
import type { Config } from '../config/schema.js';
import { deltasOf, type Deltas } from '../history/delta.js';
import { PatternTable } from '../protocol/patterns.js';
import { deltaRoomOf, isDeltaRoom, type RoomName } from '../protocol/rooms.js';
import { whenUwsDrains } from '../transport/uws-attach.js';
import { outboundBytesAgainst } from './slow-consumers.js';
import { exceptedSockets } from './deliveries.js';

/** Socket.IO packet types that carry an event (with and without binary attachments). */
const EVENT = 2;
const BINARY_EVENT = 5;

/**
 * Where a connection's position in a room is recorded (connection recovery's journal,
 * src/recovery/recovery.ts), as conflation moves it.
 */
export interface ConflationPositions {
  /** `socketId` skips `room`'s messages from now on, until one is released to it: its position there is unknown. */
  holding(socketId: string, room: RoomName): void;
  /** The held `packet` goes to `socketId` alone now: with an offset of its own, after what it was sent meanwhile; live again after it. */
  released(packet: Packet, socketId: string, room: RoomName): Packet;
}

export interface ConflationOptions {
  /** CONFLATE_ROOMS. */
  readonly rooms: PatternTable<true>;
  /** Outbound bytes past which a connection is held its conflated rooms' messages: half of SLOW_CLIENT_MAX_BYTES. */
  readonly fromBytes: number;
}

/** What one connection holds: per conflated room, the newest message it was not written. */
interface Holding {
  readonly socket: Socket;
  readonly adapter: Adapter;
  readonly held: Map<RoomName, { packet: Packet; flags: BroadcastOptions['flags'] }>;
  readonly gone: () => void;
  /** Drain signals waited for: Engine.IO's (a flush of its buffer), the `ws` socket's (node transport). */
  onFlush: boolean;
  onNetDrain: object | undefined;
  /** A write while releasing makes Engine.IO report a flush: not a reason to release again. */
  releasing: boolean;
}

/**
 * Conflation for rooms where only the newest message matters (CONFLATE_ROOMS: a score, a price).
 *
 * A connection with more than `fromBytes` queued (half of SLOW_CLIENT_MAX_BYTES, where it would
 * be closed) is not written such a room's messages: it holds the newest one of each room and is
 * written it when its queue drains below `fromBytes` again. An older held message is replaced (and
 * counted, `herald_conflated_messages_total`), never queued, so what a slow connection costs in
 * these rooms is one message reference per room it is in (MAX_SUBSCRIPTIONS bounds them), the
 * message itself shared with every other connection holding it. Their traffic alone can then
 * never close it: it is written only below `fromBytes`, and leaves it there plus what one turn
 * adds (on uWS, one batch of publishes, BROADCAST_BATCH_MS). Other rooms
 * keep the slow-consumer rule (src/realtime/slow-consumers.ts): written in order, and closed past
 * the bound, never skipped.
 *
 * Order: a connection's messages of one conflated room stay in order (the held one is the newest,
 * and it is written before the room's later ones); messages of different rooms may interleave
 * differently than they were published, as they would from two publishers. On uWS the connection
 * is taken off the room's topic while it holds (`LocalDelivery.pause`), so the fast path and its
 * batching stay as they are for everyone else, and put back right after its held message is
 * written (`resume`); batched publishes are handed to uWS first both times.
 *
 * Positions: a held message keeps its own `meta.id`, and is written with an offset of its own
 * (`ConflationPositions.released`), so the client's last id and last offset say what it actually
 * received. Connection recovery does not claim a conflated history room for a connection that
 * dropped while it held a message there (the session recovers with `recovered: false`, the client
 * subscribes again with `since` or `last`); `since` means "after this id": the messages skipped
 * before it are not sent again.
 *
 * Deltas (HISTORY_ROOMS ` delta`, src/history/delta.ts): a delta is never held, since a held
 * delta would be written after the ones it replaced, on a base the client never got. A delta
 * subscriber that is over `fromBytes` (or already holds the room) when a message of the room is
 * delivered leaves the room's delta subscribers before they are sent it (`Deltas.heldBack`) and is
 * held the whole message instead, like any member; once that is written, it receives deltas again
 * on it (`Deltas.released`).
 *
 * Drain: uWS's `drain` handler (src/transport/uws-attach.ts), the `ws` socket's `drain` (node
 * transport), Engine.IO's flush of its buffer (long-polling on both): one of them comes after
 * the queue went over `fromBytes`, and each looks again until it is below.
 */
export class Conflation implements AdapterConflation {
  private readonly holding = new Map<Socket, Holding>();

  constructor(
    private readonly opts: ConflationOptions,
    private readonly delivery: LocalDelivery | undefined,
    private readonly positions: ConflationPositions | undefined,
    private readonly metrics: Metrics,
  ) {}

  /** Whether `room`'s messages are conflated for slow connections (CONFLATE_ROOMS). */
  covers(room: RoomName): boolean {
    return this.opts.rooms.match(room) !== undefined;
  }

  hold(adapter: Adapter, packet: Packet, opts: BroadcastOptions): ReadonlySet<string> | undefined {
    if (opts.rooms.size !== 1 || opts.flags?.volatile || (packet.type !== EVENT && packet.type !== BINARY_EVENT) || packet.id !== undefined) return undefined;
    const room = opts.rooms.values().next().value as RoomName;
    if (adapter.sids.has(room) || isDeltaRoom(room) || !this.opts.rooms.match(room)) return undefined;
    const members = adapter.rooms.get(room);
    if (!members) return undefined;
    const sockets = adapter.nsp.sockets;
    const deltas = deltasOf(adapter.nsp);
    // The room's delta subscribers that would be held leave them first: held whole, never a delta.
    const deltaRoom = deltas && opts.except?.has(deltaRoomOf(room)) ? adapter.rooms.get(deltaRoomOf(room)) : undefined;
    for (const id of deltaRoom ? [...deltaRoom] : []) {
      const socket = sockets.get(id);
      if (socket && (this.holding.get(socket)?.held.has(room) || this.behind(socket))) deltas!.heldBack(id, room);
    }
    const except = exceptedSockets(adapter, opts.except);
    let held: Set<string> | undefined;
    for (const id of members) {
      if (except.has(id)) continue;
      const socket = sockets.get(id);
      if (!socket) continue;
      const state = this.holding.get(socket);
      if (!state?.held.has(room) && !this.behind(socket)) continue;
      (held ??= new Set()).add(id);
      this.keep(state ?? this.start(adapter, socket), room, packet, opts.flags, deltas);
    }
    return held;
  }

  joining(adapter: Adapter, id: string, rooms: Set<string>): void {
    const state = this.stateOf(adapter, id);
    if (!state) return;
    for (const room of rooms) if (this.drop(state, room)) this.metrics.messageConflated();
  }

  left(adapter: Adapter, id: string, room: string): void {
    const state = this.stateOf(adapter, id);
    if (state) this.drop(state, room);
  }

  private start(adapter: Adapter, socket: Socket): Holding {
    const state: Holding = { socket, adapter, held: new Map(), gone: () => this.end(state), onFlush: false, onNetDrain: undefined, releasing: false };
    this.holding.set(socket, state);
    socket.once('disconnect', state.gone);
    return state;
  }

  private keep(state: Holding, room: RoomName, packet: Packet, flags: BroadcastOptions['flags'], deltas: Deltas | undefined): void {
    if (state.held.has(room)) this.metrics.messageConflated();
    else {
      this.metrics.conflationHeld(1);
      this.positions?.holding(state.socket.id, room);
      // A delta subscriber waiting for its first whole message: that one is held, it waits on.
      deltas?.heldBack(state.socket.id, room);
    }
    state.held.set(room, { packet, flags });
    this.delivery?.pause?.(state.adapter, state.socket.id, room);
    this.arm(state);
  }

  /** Waits for a sign that the connection's queue went down. */
  private arm(state: Holding): void {
    const conn = state.socket.conn;
    if (!state.onFlush) {
      state.onFlush = true;
      conn.once('drain', () => {
        state.onFlush = false;
        this.drained(state);
      });
    }
    const transport = conn.transport as unknown as { name: string; socket?: { _socket?: NodeJS.EventEmitter } };
    if (transport.name !== 'websocket') return;
    const net = transport.socket?._socket;
    if (!net) {
      // uWS: its WebSocket has no `_socket`; its drain handler tells (src/transport/uws-attach.ts).
      whenUwsDrains(conn.transport, () => this.drained(state));
    } else if (state.onNetDrain !== net) {
      state.onNetDrain = net;
      net.once('drain', () => {
        if (state.onNetDrain === net) state.onNetDrain = undefined;
        this.drained(state);
      });
    }
  }

  private drained(state: Holding): void {
    if (this.holding.get(state.socket) !== state || state.releasing) return;
    state.releasing = true;
    try {
      this.release(state);
    } finally {
      state.releasing = false;
    }
    if (this.holding.get(state.socket) === state) this.arm(state);
  }

  /** Whether more than `fromBytes` is queued for it (what only waits for the turn's end written out first). */
  private behind(socket: Socket): boolean {
    return outboundBytesAgainst(socket, this.opts.fromBytes) > this.opts.fromBytes;
  }

  /** Writes what the connection holds, room by room, while its queue is at most `fromBytes`. */
  private release(state: Holding): void {
    const { socket, adapter } = state;
    if (!socket.connected) return this.end(state);
    if (this.behind(socket)) return;
    // Published while it held (superseded by what it holds): out to the topics' other members first.
    this.delivery?.beforeMembershipChange();
    for (const [room, { packet, flags }] of state.held) {
      if (this.behind(socket)) return;
      state.held.delete(room);
      this.metrics.conflationHeld(-1);
      if (!adapter.rooms.get(room)?.has(socket.id)) continue;
      const out = this.positions ? this.positions.released(packet, socket.id, room) : packet;
      const encoded = (adapter as unknown as { encoder: { encode(p: unknown): unknown[] } }).encoder.encode(out);
      (socket as unknown as { client: { writeToEngine(p: unknown, o: unknown): void } }).client.writeToEngine(encoded, {
        preEncoded: true,
        volatile: flags?.volatile,
        compress: flags?.compress,
      });
      // Counted as delivered now, without a fan-out latency: it waited for its connection, not for herald.
      this.metrics.delivered(1, undefined);
      this.delivery?.resume?.(adapter, socket.id, room);
      deltasOf(adapter.nsp)?.released(socket.id, room, idOf(packet));
    }
    this.end(state);
  }

  /** Drops what `room` holds; true if it held a message. */
  private drop(state: Holding, room: string): boolean {
    if (!state.held.delete(room)) return false;
    this.metrics.conflationHeld(-1);
    if (state.held.size === 0) this.end(state);
    return true;
  }

  /** The connection holds nothing more (or is gone). */
  private end(state: Holding): void {
    if (this.holding.get(state.socket) !== state) return;
    this.holding.delete(state.socket);
    state.socket.off('disconnect', state.gone);
    if (state.held.size > 0) this.metrics.conflationHeld(-state.held.size);
    state.held.clear();
  }

  private stateOf(adapter: Adapter, id: string): Holding | undefined {
    if (this.holding.size === 0) return undefined;
    const socket = adapter.nsp.sockets.get(id);
    return socket ? this.holding.get(socket) : undefined;
  }
}

/**
 * Conflation for CONFLATE_ROOMS, held past half of SLOW_CLIENT_MAX_BYTES (the other half is the
 * margin for what other rooms and direct writes add); undefined without such rooms.
 */
export function createConflation(
  config: Pick<Config, 'conflateRooms' | 'slowClientMaxBytes'>,
  deps: { delivery: LocalDelivery | undefined; positions: ConflationPositions | undefined; metrics: Metrics },
): Conflation | undefined {
  if (config.conflateRooms.length === 0) return undefined;
  const rooms = new PatternTable(config.conflateRooms.map((pattern) => ({ pattern, value: true as const })));
  return new Conflation({ rooms, fromBytes: Math.floor(config.slowClientMaxBytes / 2) }, deps.delivery, deps.positions, deps.metrics);
}

/** A message's `meta.id` (history rooms), from its packet `[event, data, meta]`. */
function idOf(packet: Packet): string | undefined {
  const meta = (packet.data as unknown[] | undefined)?.[2] as { id?: unknown } | undefined;
  return typeof meta?.id === 'string' ? meta.id : undefined;
}

