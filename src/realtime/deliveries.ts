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

const NONE: Set<string> = new Set();

function recipients(adapter: Adapter, opts: BroadcastOptions): number {
  const except = opts.except ?? NONE;
  const excluded = (members: Set<string>) => {
    let n = 0;
    for (const e of except) if (members.has(e)) n++;
    return n;
  };
  if (opts.rooms.size === 0) return adapter.sids.size - except.size;
  if (opts.rooms.size === 1) {
    const members = adapter.rooms.get(opts.rooms.values().next().value!);
    return members ? members.size - excluded(members) : 0;
  }
  const union = new Set<string>();
  for (const r of opts.rooms) for (const id of adapter.rooms.get(r) ?? []) if (!except.has(id)) union.add(id);
  return union.size;
}
