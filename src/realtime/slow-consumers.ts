import type { Server, Socket } from 'socket.io';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { bufferedAtBackpressureClose } from '../transport/uws-attach.js';
import { outboxBytes, writeOutNow } from '../transport/uws-outbox.js';

/**
 * How stale `herald_outbound_buffer_max_bytes` may be: it is measured when read (a scrape), over
 * every connection, and a read within this long of the last measurement gets that one.
 */
const SWEEP_MS = 500;
/** How often a paced sender looks again whether its connection has taken what was queued. */
const PACE_MS = 10;

export interface SlowConsumerPolicy {
  /** Outbound bytes a connection may have queued (SLOW_CLIENT_MAX_BYTES); past it, it is closed. */
  boundBytes: number;
}

/** What is queued for a connection and not yet taken by the kernel: Engine.IO's buffer, herald's outbox and the WebSocket's. */
export function outboundBytes(socket: Socket): number {
  const conn = socket.conn as unknown as { writeBuffer?: { data?: unknown }[]; transport?: { socket?: unknown } };
  let bytes = 0;
  for (const p of conn.writeBuffer ?? []) {
    bytes += typeof p.data === 'string' ? p.data.length : ((p.data as { byteLength?: number } | undefined)?.byteLength ?? 0);
  }
  // uWS: what waits in the turn's outbox for it too (src/transport/uws-outbox.ts).
  if (conn.transport) bytes += outboxBytes(conn.transport);
  const raw = conn.transport?.socket as { getBufferedAmount?: () => number; bufferedAmount?: number } | undefined;
  try {
    bytes += raw?.getBufferedAmount ? raw.getBufferedAmount() : (raw?.bufferedAmount ?? 0);
  } catch {
    // A uWS socket that closed in the meantime.
  }
  return bytes;
}

/**
 * `outboundBytes` for a decision against `limit` (close, pace, hold back): past it, what only waits
 * in the uWS outbox for the turn's end (src/transport/uws-outbox.ts) is written out first and the
 * queue measured again, so that a connection is judged by what the kernel has not taken, not by
 * what herald batches for one turn (a `last=100` replay of 1 KB messages is 100 KB in one turn).
 */
export function outboundBytesAgainst(socket: Socket, limit: number): number {
  const bytes = outboundBytes(socket);
  const transport = (socket.conn as unknown as { transport?: object }).transport;
  return bytes > limit && transport && writeOutNow(transport) ? outboundBytes(socket) : bytes;
}

/** Where a guarded connection keeps its Socket.IO socket. */
const OWNER = Symbol('herald.slowConsumers.socket');
interface GuardedConn {
  write: (this: GuardedConn, ...args: unknown[]) => unknown;
  [OWNER]?: Socket;
}

interface RawSocket {
  /** `ws` (node transport): drops the TCP connection now. */
  terminate?: () => void;
  /** uWS: closes forcefully, now. */
  close?: () => void;
}

/**
 * Slow consumers: a client that does not read must not grow this replica's memory or delay the
 * others, and must never miss a message while it stays connected. So a connection whose queued
 * output passes `boundBytes` is closed, never skipped (Centrifugo's rule). Its client received a
 * prefix of what was sent to it, in order, and nothing after a message it missed: when it
 * reconnects, connection recovery (from its last offset) or a `subscribe` with `since` (its last
 * `meta.id`) sends the rest, or tells it (`recovered: false`, `herald:reset`) when the history no
 * longer can.
 *
 * - uWS WebSockets: `maxBackpressure` with `closeOnBackpressureLimit` (src/transport/uws-attach.ts):
 *   the send that finds the queue over the bound is dropped and uWS closes the socket (1006) before
 *   it writes anything else, in room publishes and direct writes alike.
 * - Everything else (the node transport, long-polling on either): herald's guard on each
 *   connection's writes. The write that finds the queue over the bound and every later one are
 *   not written, and the connection is closed right after the current delivery.
 *
 * Either way the close is logged with reason `slow_consumer` and counted
 * (`herald_slow_consumer_disconnects_total`). The session is kept like any dropped connection's.
 */
export class SlowConsumers {
  /** Connections closed by the guard: nothing more is written to them. */
  private readonly cut = new WeakSet<object>();
  private maxSeen = 0;
  private sweptAt = -Infinity;

  constructor(
    private readonly io: Server,
    private readonly policy: SlowConsumerPolicy,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {}

  /**
   * Guards a new connection's writes: every packet Socket.IO hands to Engine.IO (events, acks,
   * room deliveries on the node transport, and on uWS those to long-polling connections) passes
   * here. uWS room publishes to WebSockets do not; uWS enforces the same bound on them natively.
   */
  attach(socket: Socket): void {
    const conn = socket.conn as unknown as GuardedConn;
    conn[OWNER] = socket;
    // Engine.IO's own `write`, the same for every connection: one guard function for all, which
    // finds its socket on the connection (no closure per connection).
    this.write ??= conn.write;
    if (conn.write === this.write) {
      conn.write = this.guardedWrite;
      return;
    }
    const write = conn.write;
    const slow = this;
    conn.write = function guardedOtherWrite(this: GuardedConn, ...args: unknown[]) {
      return slow.admits(this) ? write.apply(this, args) : this;
    };
  }

  /** Engine.IO's `write`, as the first connection had it. */
  private write: GuardedConn['write'] | undefined;

  /** A connection's `write` behind the guard; `this` is the connection. */
  private readonly guardedWrite = (() => {
    const slow = this;
    return function guardedWrite(this: GuardedConn, ...args: unknown[]): unknown {
      return slow.admits(this) ? slow.write!.apply(this, args) : this;
    };
  })();

  /** Whether a write to `conn` goes ahead: not once it was cut, nor once its queue is past the bound (then it is cut). */
  private admits(conn: GuardedConn): boolean {
    if (this.cut.has(conn)) return false;
    const socket = conn[OWNER]!;
    const bytes = outboundBytesAgainst(socket, this.policy.boundBytes);
    if (bytes <= this.policy.boundBytes) return true;
    this.shut(socket, bytes);
    return false;
  }

  /**
   * A connection went (its `disconnecting`): counts it when uWS closed it for backpressure. Those
   * the guard closed were counted when it did.
   */
  closed(socket: Socket): void {
    if (this.cut.has(socket.conn)) return;
    const bytes = bufferedAtBackpressureClose(socket.conn.transport);
    if (bytes === undefined) return;
    this.metrics.slowConsumerDisconnected();
    this.logger.info({ client: socket.id, bytes, reason: 'slow_consumer' }, 'closed a slow consumer');
  }

  /**
   * For senders that can wait (a history catch-up): resolves once `socket` has at most half the
   * bound queued, or is gone; undefined when it has now. What one connection is sent alone then
   * never closes it, however much it is: only what it is sent besides, while it does not read.
   */
  readonly pace = (socket: Socket): Promise<void> | undefined => {
    const half = this.policy.boundBytes / 2;
    const ready = () => !socket.connected || this.cut.has(socket.conn) || outboundBytesAgainst(socket, half) <= half;
    if (ready()) return undefined;
    return new Promise((resolve) => {
      const check = () => (ready() ? resolve() : setTimeout(check, PACE_MS));
      setTimeout(check, PACE_MS);
    });
  };

  /**
   * Largest outbound buffer now (or at most `SWEEP_MS` ago). Measured when asked, not on a timer:
   * a sweep asks every connection for its queue (a native call each on uWS), which on an idle
   * replica with 5,000 fans was a sixth of its CPU when it ran every 0.5 s (bench/scale/profile-notes.md).
   */
  maxOutboundBytes(): number {
    const now = Date.now();
    if (now - this.sweptAt >= SWEEP_MS) {
      this.sweptAt = now;
      let max = 0;
      for (const socket of this.io.of('/').sockets.values()) max = Math.max(max, outboundBytes(socket));
      this.maxSeen = max;
    }
    return this.maxSeen;
  }

  /** Nothing to stop: no timer runs. */
  close(): void {}

  /**
   * Closes a connection over the bound. The close runs after the delivery under way (a room
   * broadcast iterating its members must not see them leave mid-way); until then nothing more is
   * written to it. Its WebSocket is dropped at once rather than closed gracefully, which would wait
   * for a queue that is not being read; a long-polling connection's transport is discarded.
   */
  private shut(socket: Socket, bytes: number): void {
    const conn = socket.conn;
    this.cut.add(conn);
    this.metrics.slowConsumerDisconnected();
    this.logger.info({ client: socket.id, bytes, reason: 'slow_consumer' }, 'closed a slow consumer');
    queueMicrotask(() => {
      const raw = (conn.transport as unknown as { socket?: RawSocket }).socket;
      try {
        if (conn.transport.name !== 'websocket' || !raw) conn.close(true);
        else if (raw.terminate) raw.terminate();
        else raw.close?.();
      } catch (err) {
        // Already closed by its client meanwhile.
        this.logger.debug({ client: socket.id, err: (err as Error).message }, 'slow consumer was already closed');
      }
    });
  }
}
