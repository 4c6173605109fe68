import type { Socket } from 'socket.io';
import type { Adapter, BroadcastOptions } from 'socket.io-adapter';
import type { TemplatedApp } from 'uWebSockets.js';
import type { LocalDelivery, Packet } from '../cluster/adapter.js';
import { PublishBatcher } from './uws-batch.js';
import { installOutbox, type Outbox } from './uws-outbox.js';

/** Socket.IO's separator between namespace and room in uWS topic names (socket.io/dist/uws.js). */
const SEPARATOR = '\x1f';

/**
 * herald's adapter (src/cluster/adapter.ts) delivers through this while the uWS transport runs.
 * It sends the same packets to the same sockets as Socket.IO's uWS broadcast, for less. Socket.IO's
 * version publishes a one-room broadcast once to the room's uWS topic, which reaches every
 * WebSocket member natively, and then walks every member of the room to find those on HTTP
 * long-polling, which uWS cannot reach. With 500 members per room that walk was the largest
 * JavaScript cost of a replica (15 % of its time at 4,000 messages/s in `bench/profile.ts`),
 * though there is usually no polling member at all. This one keeps an index of the sockets not
 * (yet) on WebSocket, per namespace, and walks that instead.
 *
 * It also keeps sockets off the uWS topic of their own id room. Socket.IO subscribes every
 * WebSocket to a topic named after its id, one more native topic per connection (about 600 B of
 * RSS each in `bench/memory.ts`) for a room that only ever holds that socket. herald unsubscribes
 * it right after Socket.IO subscribed (at connect, or on the upgrade from long-polling) and
 * delivers a broadcast to a socket's id room by writing to its members directly.
 *
 * Under load it batches room publishes (`BROADCAST_BATCH_MS`, src/transport/uws-batch.ts), and
 * flushes the batch before every join, leave, upgrade and direct write to a WebSocket connection,
 * so each connection still receives what it would have received, in the same order.
 *
 * The fast path takes at most one room and no exceptions, with Socket.IO's encoding, topic names
 * and packet options; other broadcasts go to Socket.IO's. Like the uWS attachment, it is
 * process-wide (one uWS server per process).
 */
export class UwsDelivery implements LocalDelivery {
  readonly batcher: PublishBatcher;
  /** Per namespace (one adapter each), its sockets still on long-polling. */
  private readonly polling = new WeakMap<Adapter, Set<Socket>>();

  /** A connection's direct writes of one turn, in one write (src/transport/uws-outbox.ts). */
  readonly outbox: Outbox;

  constructor(app: TemplatedApp, opts: { batchMs: number; compressFrom?: number }) {
    current?.flush();
    this.outbox = installOutbox(app);
    // Socket.IO's own fast path never asks uWS to compress a publish; this one does when told to.
    this.batcher = new PublishBatcher(app, opts.batchMs, opts.compressFrom);
    current = this.batcher;
  }

  beforeMembershipChange(): void {
    this.batcher.flush();
  }

  joined(adapter: Adapter, id: string, rooms: Set<string>, isNew: boolean): void {
    if (!rooms.has(id)) return;
    const socket = socketOf(adapter, id);
    if (!socket) return;
    const topic = `${adapter.nsp.name}${SEPARATOR}${id}`;
    const leave = () => (socket.conn.transport as unknown as { socket?: { unsubscribe(t: string): boolean } }).socket?.unsubscribe(topic);
    if (socket.conn.transport.name === 'websocket') leave();
    // Socket.IO's own `upgrade` listener, added just now, subscribes it to all its rooms; this one runs after it.
    else if (isNew) socket.conn.once('upgrade', leave);
  }

  /**
   * Before its first join (its id room, before any other): indexed while it is on long-polling.
   * Before the join, so that this `upgrade` listener runs ahead of the one Socket.IO adds there.
   */
  joining(adapter: Adapter, id: string): void {
    const socket = socketOf(adapter, id);
    if (!socket) return;
    flushBeforeWrites(Object.getPrototypeOf(socket.conn) as EngineSocket);
    if (socket.conn.transport.name === 'websocket') {
      this.outbox.patch(Object.getPrototypeOf(socket.conn.transport));
      return;
    }
    let set = this.polling.get(adapter);
    if (!set) this.polling.set(adapter, (set = new Set()));
    set.add(socket);
    const forget = () => set.delete(socket);
    // Runs before Socket.IO's own `upgrade` listener (added after this join) subscribes it to its
    // rooms' topics: what is queued was already written to it on polling.
    socket.conn.once('upgrade', (transport: object) => {
      this.batcher.flush();
      this.outbox.patch(Object.getPrototypeOf(transport));
      forget();
    });
    socket.conn.once('close', forget);
    socket.once('disconnect', forget);
  }

  /** Off the room's topic (conflation, src/realtime/conflation.ts): what was batched goes out first, to the topic's members as they were. */
  pause(adapter: Adapter, id: string, room: string): void {
    const ws = webSocketOf(socketOf(adapter, id));
    const topic = `${adapter.nsp.name}${SEPARATOR}${room}`;
    // Socket.IO subscribes it again on an upgrade or a join: checked at every held delivery.
    if (!ws?.isSubscribed(topic)) return;
    this.batcher.flush();
    ws.unsubscribe(topic);
  }

  resume(adapter: Adapter, id: string, room: string): void {
    const ws = webSocketOf(socketOf(adapter, id));
    if (!ws || !adapter.rooms.get(room)?.has(id)) return;
    // Published while it was off the topic: held for it, superseded by what it was just written.
    this.batcher.flush();
    ws.subscribe(`${adapter.nsp.name}${SEPARATOR}${room}`);
  }

  broadcast(adapter: Adapter, packet: Packet, opts: BroadcastOptions, held?: ReadonlySet<string>): boolean {
    if (opts.rooms.size > 1 || (opts.except?.size ?? 0) > 0) return false;
    const flags = opts.flags ?? {};
    const packetOpts = { preEncoded: true, volatile: flags.volatile, compress: flags.compress };
    const encoded: (string | Buffer)[] = (adapter as unknown as { encoder: { encode(p: unknown): (string | Buffer)[] } }).encoder.encode(packet);
    const room = opts.rooms.size === 0 ? undefined : (opts.rooms.values().next().value as string);
    if (room !== undefined && adapter.sids.has(room)) {
      // A socket's id room: no topic (see above); its members, usually just that socket, directly.
      (adapter as unknown as { apply(o: BroadcastOptions, each: (socket: unknown) => void): void }).apply(opts, (socket) => writeToEngine(socket, encoded, packetOpts));
      return true;
    }
    const topic = room === undefined ? adapter.nsp.name : `${adapter.nsp.name}${SEPARATOR}${room}`;
    for (const e of encoded) {
      const binary = typeof e !== 'string';
      // "4": the Engine.IO message type, as Socket.IO's fast path prefixes it.
      this.batcher.publish(topic, binary ? e : `4${e}`, binary);
    }
    const waiting = this.polling.get(adapter);
    if (!waiting || waiting.size === 0) return true;
    const members = room === undefined ? undefined : adapter.rooms.get(room);
    if (room !== undefined && !members) return true;
    // Engine.IO emits `upgrade` right after switching transports, so every socket here is still
    // on long-polling.
    for (const socket of waiting) {
      if (adapter.nsp.sockets.get(socket.id) !== socket) continue; // not connected (yet) in this namespace
      if ((members && !members.has(socket.id)) || held?.has(socket.id)) continue;
      writeToEngine(socket, encoded, packetOpts);
    }
    return true;
  }
}

interface TopicSocket {
  subscribe(topic: string): boolean;
  unsubscribe(topic: string): boolean;
  isSubscribed(topic: string): boolean;
}

/** Its uWS WebSocket, when it is on one. */
function webSocketOf(socket: Socket | undefined): TopicSocket | undefined {
  if (socket?.conn.transport.name !== 'websocket') return undefined;
  return (socket.conn.transport as unknown as { socket?: TopicSocket }).socket;
}

function socketOf(adapter: Adapter, id: string): Socket | undefined {
  const nsp = adapter.nsp as unknown as { sockets: Map<string, Socket>; _preConnectSockets?: Map<string, Socket> };
  return nsp.sockets.get(id) ?? nsp._preConnectSockets?.get(id);
}

/** The batcher of the uWS server in this process (one per process), for the patched `sendPacket`. */
let current: PublishBatcher | undefined;

interface EngineSocket {
  transport?: { name: string };
  sendPacket(...args: unknown[]): unknown;
}
const patched = new WeakSet<EngineSocket>();

/**
 * Every write to one connection goes through Engine.IO's `Socket#sendPacket` (emits, acks, pings,
 * disconnects). On a WebSocket connection, hand queued publishes to uWS first: uWS then sends the
 * subscriber's topic messages ahead of the direct one, as if nothing had been queued. Patched on
 * the prototype Socket.IO's engine actually uses, found on the first connection.
 */
function flushBeforeWrites(proto: EngineSocket): void {
  if (patched.has(proto)) return;
  patched.add(proto);
  const sendPacket = proto.sendPacket;
  proto.sendPacket = function flushedSendPacket(this: EngineSocket, ...args: unknown[]) {
    if (current?.pending && this.transport?.name === 'websocket') current.flush();
    return sendPacket.apply(this, args);
  };
}

function writeToEngine(socket: unknown, encoded: (string | Buffer)[], opts: object): void {
  (socket as { client: { writeToEngine(p: unknown, o: unknown): void } }).client.writeToEngine(encoded, opts);
}
