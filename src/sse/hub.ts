import { randomBytes } from 'node:crypto';
import type { Server } from 'socket.io';
import type { BroadcastOptions } from 'socket.io-adapter';
import type { Packet } from '../cluster/adapter.js';
import { HeraldError, type ErrorBody } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { RESET_EVENT, type MessageId } from '../protocol/events.js';
import { isStreamId } from '../protocol/ids.js';
import type { RoomName } from '../protocol/rooms.js';
import { eventFrame } from './frames.js';
import { delivery, type Delivery, type SseStream } from './stream.js';
import type { OtherMembers } from '../protocol/members.js';

/** Socket.IO's packet type of an event. */
const EVENT = 2;

export interface HubOptions {
  /** A stream silent this long gets a heartbeat comment (SSE_HEARTBEAT_SECONDS). */
  readonly heartbeatMs: number;
  /** The `retry:` a drain ends streams with (SSE_RETRY_MS). */
  readonly retryMs: number;
  /** Open streams per client address (SSE_STREAMS_PER_IP). */
  readonly perAddress: number;
}

/**
 * This replica's Server-Sent Events streams, and their share of every delivery.
 *
 * Streams are members of Socket.IO's rooms: each has an id of a Socket.IO connection's shape (so
 * no client can subscribe to it, src/protocol/rooms.ts) and is added to the adapter's rooms like a
 * socket. So a room with only SSE members is still a room of this replica: its Redis channel is
 * subscribed, its history watched and refilled after a gap, its webhooks and presence counted,
 * and `delete-room` follows the last member, whoever it is. Socket.IO's own delivery skips these
 * ids (no socket has them).
 *
 * herald's adapter hands every local delivery to `deliver` (src/cluster/adapter.ts), the same
 * one Socket.IO's sockets get, before the recovery offset is added: each publication is turned
 * into SSE text once per room, and every stream in the room gets that one string (with its own
 * `id:` line, the positions of its own history rooms: built once for all the streams that are in
 * step, see `IdMemo` in stream.ts). Streams write at the end of the event-loop turn, one write
 * each for all the turn's messages (stream.ts).
 */
export class SseHub implements OtherMembers {
  private readonly streams = new Map<string, SseStream>();
  private readonly opened: ((c: { client: string; user: string | undefined; transport: string }) => void)[] = [];
  private readonly closed: ((c: { client: string; user: string | undefined; transport: string; reason: string }) => void)[] = [];
  private readonly byRoom = new Map<RoomName, Set<SseStream>>();
  private readonly perAddress = new Map<string, number>();
  private readonly beat: NodeJS.Timeout;

  constructor(
    private readonly io: Server,
    private readonly opts: HubOptions,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {
    // One timer for every stream: each gets a comment once it has been silent for the heartbeat.
    this.beat = setInterval(() => {
      const now = Date.now();
      for (const s of this.streams.values()) s.heartbeat(now, opts.heartbeatMs);
    }, Math.max(250, Math.floor(opts.heartbeatMs / 3)));
    this.beat.unref();
  }

  get size(): number {
    return this.streams.size;
  }

  /** A fresh stream id: 20 base64url characters, the shape of a Socket.IO connection id. */
  newId(): string {
    return randomBytes(15).toString('base64url');
  }

  /** Whether `address` may open one more stream here. */
  mayOpen(address: string): boolean {
    return (this.perAddress.get(address) ?? 0) < this.opts.perAddress;
  }

  /** Registers an open stream; it is forgotten (and leaves its rooms) when its response ends. */
  add(stream: SseStream, transport: string): void {
    this.streams.set(stream.id, stream);
    this.perAddress.set(stream.address, (this.perAddress.get(stream.address) ?? 0) + 1);
    this.metrics.connectionOpened(transport);
    this.adapter().addAll(stream.id, new Set([stream.id]));
    const who = { client: stream.id, user: stream.identity.userId, transport };
    for (const fn of this.opened) fn(who);
    let reason = 'transport close';
    stream.overflowed(() => {
      reason = 'slow consumer';
      this.metrics.slowConsumerDisconnected();
      this.logger.debug({ client: stream.id, address: stream.address }, 'closed an event stream whose reader fell behind (SLOW_CLIENT_MAX_BYTES)');
    });
    stream.onClose(() => {
      this.remove(stream);
      for (const fn of this.closed) fn({ ...who, reason: stream.endReason ?? reason });
    });
  }

  userOf(client: string): string | undefined {
    return this.streams.get(client)?.identity.userId;
  }

  onOpened(fn: (c: { client: string; user: string | undefined; transport: string }) => void): void {
    this.opened.push(fn);
  }

  onClosed(fn: (c: { client: string; user: string | undefined; transport: string; reason: string }) => void): void {
    this.closed.push(fn);
  }

  /** Adds `stream` to `room` (a member from now on: live deliveries reach it). */
  join(stream: SseStream, room: RoomName): void {
    if (stream.closed) return;
    let members = this.byRoom.get(room);
    if (!members) this.byRoom.set(room, (members = new Set()));
    members.add(stream);
    stream.joinedRooms.set(room, members);
    this.adapter().addAll(stream.id, new Set([room]));
  }

  leave(stream: SseStream, room: RoomName): void {
    const members = this.byRoom.get(room);
    members?.delete(stream);
    if (members?.size === 0) this.byRoom.delete(room);
    stream.joinedRooms.delete(room);
    this.adapter().del(stream.id, room);
  }

  get(id: string): SseStream | undefined {
    return this.streams.get(id);
  }

  /** Streams of user `user` (the control API's targets). */
  ofUser(user: string): SseStream[] {
    return [...this.streams.values()].filter((s) => s.identity.userId === user);
  }

  all(): IterableIterator<SseStream> {
    return this.streams.values();
  }

  /** Rooms `stream` is in now. */
  roomsOf(stream: SseStream): RoomName[] {
    return [...(this.adapter().sids.get(stream.id) ?? [])].filter((r) => r !== stream.id);
  }

  /** This replica's share of a broadcast, for its streams (herald's adapter calls this for every local delivery). */
  deliver(packet: Packet, opts: BroadcastOptions): void {
    if (this.streams.size === 0 || packet.type !== EVENT || packet.nsp !== '/' || !Array.isArray(packet.data)) return;
    const [event, data, meta] = packet.data as [unknown, unknown, unknown];
    if (typeof event !== 'string') return;
    let d: Delivery | undefined;
    const make = (): Delivery => delivery(eventFrame(event, data, meta), positionIn(meta), event === RESET_EVENT ? resetOf(data) : undefined);
    const except = opts.except !== undefined && opts.except.size > 0 ? opts.except : undefined;
    if (opts.rooms.size === 0) {
      d = make();
      // To every connection: under the stream's own id room, which keeps no position.
      for (const s of this.streams.values()) if (!except?.has(s.id)) s.deliver(s.id, d);
      return;
    }
    const seen = opts.rooms.size > 1 ? new Set<SseStream>() : undefined;
    for (const room of opts.rooms) {
      const members = this.byRoom.get(room);
      if (!members) continue;
      d ??= make();
      for (const s of members) {
        if (except?.has(s.id)) continue;
        if (seen) {
          if (seen.has(s)) continue;
          seen.add(s);
        }
        s.deliver(room, d);
      }
    }
  }

  /** Ends every stream with `body` and a `retry:` hint (a drain: reconnect through the balancer). */
  closeAll(body: ErrorBody): number {
    const all = [...this.streams.values()];
    for (const s of all) s.close(body, this.opts.retryMs);
    return all.length;
  }

  /** The drain: every stream ends with `herald:disconnect {code: "draining"}` and `retry:`. */
  drain(): number {
    return this.closeAll(new HeraldError('draining').toBody());
  }

  close(): void {
    clearInterval(this.beat);
  }

  private remove(stream: SseStream): void {
    if (this.streams.get(stream.id) !== stream) return;
    // Out of its rooms first, while presence can still tell its user (`userOf`).
    this.adapter().delAll(stream.id);
    this.streams.delete(stream.id);
    clearTimeout(stream.timer);
    const n = (this.perAddress.get(stream.address) ?? 1) - 1;
    if (n > 0) this.perAddress.set(stream.address, n);
    else this.perAddress.delete(stream.address);
    for (const [room, members] of stream.joined()) {
      members.delete(stream);
      if (members.size === 0) this.byRoom.delete(room);
    }
    this.metrics.connectionClosed();
  }

  /** The adapter's rooms (every member, sockets and streams). */
  adapterRooms(): ReadonlyMap<RoomName, Set<string>> {
    return this.adapter().rooms;
  }

  private adapter() {
    return this.io.of('/').adapter;
  }
}

/** `meta.id` of a published message, when it is a history position. */
function positionIn(meta: unknown): MessageId | undefined {
  const id = typeof meta === 'object' && meta !== null ? (meta as { id?: unknown }).id : undefined;
  return isStreamId(id) ? id : undefined;
}

function resetOf(data: unknown): MessageId | undefined {
  const offset = typeof data === 'object' && data !== null ? (data as { offset?: unknown }).offset : undefined;
  return isStreamId(offset) ? offset : undefined;
}
