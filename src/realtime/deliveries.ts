import type { Adapter, BroadcastOptions } from 'socket.io-adapter';
import type { Metrics } from '../observability/metrics.js';

/**
 * Measures every local broadcast: recipients (`herald_messages_delivered_total`) and fan-out
 * latency from `meta.ts` to the hand-off to local sockets. herald's adapter calls it for each of
 * its local deliveries (its own broadcasts and those arriving from other replicas), once.
 */
export function deliveryObserver(metrics: Metrics): (adapter: Adapter, packet: { data?: unknown[] }, opts: BroadcastOptions) => void {
  return (adapter, packet, opts) => {
    if (adapter.nsp.name !== '/') return;
    const meta = Array.isArray(packet.data) ? (packet.data[2] as { ts?: unknown } | undefined) : undefined;
    const ts = typeof meta?.ts === 'number' ? meta.ts : undefined;
    // Published messages only (they carry meta.ts); herald's own events are not counted.
    if (ts !== undefined) metrics.delivered(recipients(adapter, opts), Math.max(0, Date.now() - ts) / 1000);
  };
}

/**
 * Who a broadcast reaches here: the members of its rooms (every socket when none), less those of
 * its `except` rooms. An `except` entry is a room (a socket's id room, or a room such as a delta
 * room's, src/history/delta.ts), so it is expanded to its members, as Socket.IO's adapter does.
 */
function recipients(adapter: Adapter, opts: BroadcastOptions): number {
  const except = exceptedSockets(adapter, opts.except);
  if (opts.rooms.size <= 1) {
    const members = opts.rooms.size === 0 ? adapter.sids : adapter.rooms.get(opts.rooms.values().next().value!);
    if (!members) return 0;
    let n = members.size;
    for (const id of except) if (members.has(id)) n--;
    return n;
  }
  const union = new Set<string>();
  for (const r of opts.rooms) for (const id of adapter.rooms.get(r) ?? []) if (!except.has(id)) union.add(id);
  return union.size;
}

const NONE: ReadonlySet<string> = new Set();

/** The sockets a broadcast's `except` rooms leave out (usually socket ids: catch-ups in progress, or a delta room). */
export function exceptedSockets(adapter: Adapter, except: Set<string> | undefined): ReadonlySet<string> {
  if (!except || except.size === 0) return NONE;
  // One room (a delta room's usual case): its own member set, nothing copied.
  if (except.size === 1) return adapter.rooms.get(except.values().next().value!) ?? NONE;
  const out = new Set<string>();
  for (const room of except) for (const id of adapter.rooms.get(room) ?? []) out.add(id);
  return out;
}
