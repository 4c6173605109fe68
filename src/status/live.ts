import type { Server } from 'socket.io';
import type { LiveState } from '../observability/live.js';
import { isDeltaRoom } from '../protocol/rooms.js';

/**
 * What this replica has right now, read when asked (a scrape of `/metrics`, the status page's
 * numbers) rather than counted on the hot path: Socket.IO's own tables, the bus, the phase.
 */
export function liveStateOf(deps: {
  io: Server;
  bus: { readonly kind: string; isReady(): boolean; messagesReceived(): number };
  lifecycle: { readonly phase: string };
  slow: { maxOutboundBytes(): number };
  /** Server-Sent Events streams, counted under the transport `sse`. */
  streams?: { readonly size: number };
}): LiveState {
  const { io, bus, lifecycle, slow } = deps;
  const main = () => io.of('/');
  return {
    connectionsByTransport() {
      const counts: Record<string, number> = {};
      for (const s of main().sockets.values()) counts[s.conn.transport.name] = (counts[s.conn.transport.name] ?? 0) + 1;
      if (deps.streams?.size) counts.sse = deps.streams.size;
      return counts;
    },
    connections: () => main().sockets.size + (deps.streams?.size ?? 0),
    rooms() {
      // Delivery rooms of delta subscribers (src/history/delta.ts) are not rooms anyone subscribed to.
      let n = main().adapter.rooms.size - main().adapter.sids.size;
      for (const room of main().adapter.rooms.keys()) if (isDeltaRoom(room)) n--;
      return n;
    },
    subscriptions() {
      let n = 0;
      for (const rooms of main().adapter.sids.values()) {
        n += rooms.size - 1;
        if (rooms.size > 2) for (const room of rooms) if (isDeltaRoom(room)) n--;
      }
      return n;
    },
    redisUp: () => (bus.kind === 'memory' ? undefined : bus.isReady() ? 1 : 0),
    phase: () => lifecycle.phase,
    maxOutboundBytes: () => slow.maxOutboundBytes(),
    redisMessagesReceived: () => (bus.kind === 'memory' ? undefined : bus.messagesReceived()),
  };
}
