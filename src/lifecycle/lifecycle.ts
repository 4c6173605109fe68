import { setTimeout as delay } from 'node:timers/promises';
import type { Server, Socket } from 'socket.io';

/** starting → ready → draining → stopped; never backwards. */
export type Phase = 'starting' | 'ready' | 'draining' | 'stopped';

export interface Lifecycle {
  readonly phase: Phase;
  /** Moves forward to `next`; ignored if already there or past it. */
  advance(next: Phase): void;
  /**
   * True once the drain starts closing clients (after DRAIN_DELAY_SECONDS of `draining`), and
   * once stopped: new Socket.IO handshakes and event streams are refused.
   */
  readonly refusingConnections: boolean;
  /** From now on `refusingConnections` (the drain, its delay over). */
  refuseConnections(): void;
}

const ORDER: readonly Phase[] = ['starting', 'ready', 'draining', 'stopped'];

export function createLifecycle(): Lifecycle {
  let phase: Phase = 'starting';
  let refusing = false;
  return {
    get phase() {
      return phase;
    },
    get refusingConnections() {
      return refusing || phase === 'stopped';
    },
    refuseConnections() {
      refusing = true;
    },
    advance(next) {
      if (ORDER.indexOf(next) > ORDER.indexOf(phase)) phase = next;
    },
  };
}

/** How often a batch of clients is disconnected while draining. */
const DRAIN_TICK_MS = 100;

/**
 * Closes this replica's client connections in even batches spread over `drainMs`, so they do not
 * all reconnect to the other replicas in the same instant. Closing the transport (rather than
 * sending a Socket.IO disconnect) makes clients see "transport close" and reconnect by themselves,
 * through the load balancer, to a replica that is still ready. `close` does it for one socket
 * (by default: its transport); `stop` ends the batches early. Returns how many were closed.
 */
export async function closeConnectionsInBatches(
  io: Server,
  drainMs: number,
  opts: { close?: (socket: Socket) => void; stop?: () => boolean } = {},
): Promise<number> {
  const sockets = io.of('/').sockets;
  const closing = new Set<string>();
  const close = opts.close ?? ((socket: Socket) => socket.conn.close());
  const deadline = Date.now() + drainMs;
  // Until every socket is closed this way: a tick that comes late (a busy event loop) past the
  // deadline closes all the rest at once, rather than leaving them to the server's close, which
  // sends no last offset (a client of a drain would then find its session only if it was saved
  // before it asked).
  while (!opts.stop?.()) {
    const pending = [...sockets.values()].filter((s) => !closing.has(s.id));
    if (pending.length === 0) break;
    const ticksLeft = Math.max(1, Math.floor((deadline - Date.now()) / DRAIN_TICK_MS));
    for (const socket of pending.slice(0, Math.ceil(pending.length / ticksLeft))) {
      closing.add(socket.id);
      close(socket);
    }
    await delay(DRAIN_TICK_MS);
  }
  return closing.size;
}
