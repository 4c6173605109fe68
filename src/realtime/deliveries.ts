import { Adapter, type BroadcastOptions } from 'socket.io-adapter';
import type { Metrics } from '../observability/metrics.js';
import type { SlowConsumers } from './slow-consumers.js';

/**
 * Measures every local broadcast: recipients (`herald_messages_delivered_total`) and fan-out
 * latency from `meta.ts` to the hand-off to local sockets. Installed on `Adapter.prototype.broadcast`
 * after the transport started, so it wraps Socket.IO's uWS fast path as well; the Redis adapter's
 * local deliveries (its own and those arriving from other replicas) all pass through it once.
 * One herald per process, like the uWS attachment itself. Returns the uninstaller.
 */
export function observeDeliveries(metrics: Metrics, slow: SlowConsumers): () => void {
  const inner = Adapter.prototype.broadcast;
  const observedBroadcast = function (this: Adapter, packet: any, opts: BroadcastOptions) {
    if (this.nsp.name === '/') {
      const meta = Array.isArray(packet?.data) ? packet.data[2] : undefined;
      const ts = typeof meta?.ts === 'number' ? (meta.ts as number) : undefined;
      metrics.delivered(recipients(this, opts), ts === undefined ? undefined : Math.max(0, Date.now() - ts) / 1000);
      slow.onBroadcast(this.sids, opts.rooms, opts.except ?? NONE);
    }
    return inner.call(this, packet, opts);
  };
  Adapter.prototype.broadcast = observedBroadcast;
  return () => {
    // io.close() may already have put Socket.IO's original back: leave that in place.
    if (Adapter.prototype.broadcast === observedBroadcast) Adapter.prototype.broadcast = inner;
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
