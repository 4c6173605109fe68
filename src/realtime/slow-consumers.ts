import type { Server, Socket } from 'socket.io';
import type { TransportKind } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

/** How often outbound buffers are checked for the disconnect rule. */
const SWEEP_MS = 500;

export interface SlowConsumerPolicy {
  /** Outbound bytes a connection may have queued; over it, messages to it are dropped. */
  boundBytes: number;
  /** Over the bound this long, continuously: disconnected. */
  graceMs: number;
}

/** What is queued for a connection and not yet taken by the kernel: Engine.IO's buffer plus the WebSocket's. */
export function outboundBytes(socket: Socket): number {
  const conn = socket.conn as unknown as { writeBuffer?: { data?: unknown }[]; transport?: { socket?: unknown } };
  let bytes = 0;
  for (const p of conn.writeBuffer ?? []) {
    bytes += typeof p.data === 'string' ? p.data.length : ((p.data as { byteLength?: number } | undefined)?.byteLength ?? 0);
  }
  const raw = conn.transport?.socket as { getBufferedAmount?: () => number; bufferedAmount?: number } | undefined;
  try {
    bytes += raw?.getBufferedAmount ? raw.getBufferedAmount() : (raw?.bufferedAmount ?? 0);
  } catch {
    // A uWS socket that closed in the meantime.
  }
  return bytes;
}

/**
 * Slow consumers: a client that does not read must not grow this replica's memory or delay the
 * others. Policy:
 * - over `boundBytes` of queued output, messages to it are dropped and counted. On uWS the native
 *   `maxBackpressure` (set to the same bound) skips it in room publishes and herald counts the
 *   broadcasts it was skipped for; on the node transport herald's write guard drops and counts;
 * - over the bound for `graceMs` without a break, it is disconnected (logged with reason
 *   `slow_consumer`, counted); it reconnects like any dropped client, and history rooms recover.
 */
export class SlowConsumers {
  private readonly overSince = new Map<string, number>();
  private maxSeen = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly io: Server,
    private readonly policy: SlowConsumerPolicy,
    /** Which transport serves the connections (known once the server started). */
    private readonly transport: () => TransportKind,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {
    this.timer = setInterval(() => this.sweep(), SWEEP_MS);
    this.timer.unref();
  }

  /** Guards a new connection's writes (node transport; uWS enforces the bound natively). */
  attach(socket: Socket): void {
    if (this.transport() === 'uws') return;
    const conn = socket.conn as unknown as { write: (...args: unknown[]) => unknown };
    const write = conn.write;
    const { boundBytes } = this.policy;
    const metrics = this.metrics;
    conn.write = function guardedWrite(this: unknown, ...args: unknown[]) {
      if (outboundBytes(socket) > boundBytes) {
        metrics.slowConsumerDropped(1);
        return this;
      }
      return write.apply(this, args);
    };
  }

  /** Counts what uWS skips: one drop per broadcast for each slow member of its rooms. */
  onBroadcast(sids: Map<string, Set<string>>, rooms: Set<string>, except: Set<string>): void {
    if (this.overSince.size === 0 || this.transport() !== 'uws') return;
    let dropped = 0;
    for (const id of this.overSince.keys()) {
      if (except.has(id)) continue;
      const joined = sids.get(id);
      if (!joined) continue;
      if (rooms.size === 0) dropped++;
      else for (const r of rooms) if (joined.has(r)) {
        dropped++;
        break;
      }
    }
    if (dropped > 0) this.metrics.slowConsumerDropped(dropped);
  }

  /** Largest outbound buffer seen at the last check. */
  maxOutboundBytes(): number {
    return this.maxSeen;
  }

  close(): void {
    clearInterval(this.timer);
  }

  private sweep(): void {
    const now = Date.now();
    let max = 0;
    for (const socket of this.io.of('/').sockets.values()) {
      const bytes = outboundBytes(socket);
      if (bytes > max) max = bytes;
      if (bytes <= this.policy.boundBytes) {
        this.overSince.delete(socket.id);
        continue;
      }
      const since = this.overSince.get(socket.id);
      if (since === undefined) this.overSince.set(socket.id, now);
      else if (now - since >= this.policy.graceMs) this.cut(socket, bytes);
    }
    for (const id of this.overSince.keys()) if (!this.io.of('/').sockets.has(id)) this.overSince.delete(id);
    this.maxSeen = max;
  }

  private cut(socket: Socket, bytes: number): void {
    this.overSince.delete(socket.id);
    this.metrics.slowConsumerDisconnected();
    this.logger.info({ client: socket.id, bytes, reason: 'slow_consumer' }, 'disconnecting a slow consumer');
    const raw = (socket.conn as unknown as { transport?: { socket?: { terminate?: () => void; close?: () => void } } }).transport?.socket;
    socket.disconnect(true);
    // Its queue will never drain: free it now rather than after a graceful close that cannot finish.
    try {
      if (raw?.terminate) raw.terminate();
      else raw?.close?.();
    } catch {
      // Already closed.
    }
  }
}
