import type { Namespace, Server, Socket } from 'socket.io';
import { Adapter, type BroadcastOptions } from 'socket.io-adapter';
import type { TemplatedApp } from 'uWebSockets.js';

/** Socket.IO's separator between namespace and room in uWS topic names (socket.io/dist/uws.js). */
const SEPARATOR = '\x1f';

/**
 * Replaces the broadcast that `io.attachApp` installs with one that delivers the same packets to
 * the same sockets for less. Socket.IO's version publishes a one-room broadcast once to the room's
 * uWS topic, which reaches every WebSocket member natively, and then walks every member of the room
 * to find those on HTTP long-polling, which uWS cannot reach. With 500 members per room that walk
 * was the largest JavaScript cost of a replica (15 % of its time at 4,000 messages/s in
 * `bench/profile.ts`), though there is usually no polling member at all. This version keeps an
 * index of the sockets not (yet) on WebSocket, per namespace, and walks that instead.
 *
 * Everything else is Socket.IO's: the fast path only for at most one room and no exceptions, the
 * same encoding, topic and packet options; other broadcasts go to the version it replaced. Like
 * the uWS attachment, it is process-wide (one uWS server per process), and `io.close()` removes it
 * with Socket.IO's own adapter patch.
 */
export function installUwsBroadcast(io: Server, app: TemplatedApp): void {
  const polling = new WeakMap<Namespace, Set<Socket>>();
  const track = (nsp: Namespace) => {
    const set = new Set<Socket>();
    polling.set(nsp, set);
    // Middleware runs before the socket joins any room, so no broadcast can miss it.
    nsp.use((socket, next) => {
      if (socket.conn.transport.name !== 'websocket') {
        set.add(socket);
        const forget = () => set.delete(socket);
        socket.conn.once('upgrade', forget);
        socket.conn.once('close', forget);
        socket.once('disconnect', forget);
      }
      next();
    });
  };
  for (const nsp of (io as unknown as { _nsps: Map<string, Namespace> })._nsps.values()) track(nsp);
  io.on('new_namespace', track);

  const previous = Adapter.prototype.broadcast;
  Adapter.prototype.broadcast = function uwsBroadcast(this: Adapter, packet: any, opts: BroadcastOptions) {
    if (opts.rooms.size > 1 || (opts.except?.size ?? 0) > 0) return previous.call(this, packet, opts);
    const flags = opts.flags ?? {};
    packet.nsp = this.nsp.name;
    const encoded: (string | Buffer)[] = (this as unknown as { encoder: { encode(p: unknown): (string | Buffer)[] } }).encoder.encode(packet);
    const room = opts.rooms.size === 0 ? undefined : (opts.rooms.values().next().value as string);
    const topic = room === undefined ? this.nsp.name : `${this.nsp.name}${SEPARATOR}${room}`;
    for (const e of encoded) {
      const binary = typeof e !== 'string';
      // "4": the Engine.IO message type, as Socket.IO's fast path prefixes it.
      app.publish(topic, binary ? e : `4${e}`, binary);
    }
    const waiting = polling.get(this.nsp as unknown as Namespace);
    if (!waiting || waiting.size === 0) return;
    const members = room === undefined ? undefined : this.rooms.get(room);
    if (room !== undefined && !members) return;
    // Engine.IO emits `upgrade` right after switching transports, so every socket here is still
    // on long-polling.
    for (const socket of waiting) {
      if (this.nsp.sockets.get(socket.id) !== socket) continue; // not connected (yet) in this namespace
      if (members && !members.has(socket.id)) continue;
      (socket as unknown as { client: { writeToEngine(p: unknown, o: unknown): void } }).client.writeToEngine(encoded, {
        preEncoded: true,
        volatile: flags.volatile,
        compress: flags.compress,
      });
    }
  };
}
