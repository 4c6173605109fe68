import { descriptorReserve, openDescriptors } from '../limits/descriptors.js';

/** A listen socket that can be closed and opened again on the same port. */
export interface PausableListener {
  /** Closes the listen socket; connections already accepted are untouched. */
  pause(): void;
  /** Listens again; false when the port could not be bound (tried again at the next check). */
  resume(): boolean;
}

export interface AcceptGuardEvents {
  paused(openDescriptors: number): void;
  resumed(openDescriptors: number): void;
  resumeFailed(openDescriptors: number): void;
}

/** How often descriptors are counted: one `stat` of /proc/self/fd, a few microseconds. */
export const ACCEPT_GUARD_INTERVAL_MS = 100;

/**
 * Where the guard stops and starts accepting, under a descriptor limit: it closes the listen
 * socket once fewer than a quarter of `descriptorReserve(limit)` descriptors are free (at least 8),
 * and listens again once half of the reserve is free.
 */
export function acceptThresholds(limit: number): { pauseAt: number; resumeAt: number } {
  const reserve = descriptorReserve(limit);
  return { pauseAt: limit - Math.max(8, Math.floor(reserve / 4)), resumeAt: limit - Math.floor(reserve / 2) };
}

/**
 * The backstop behind MAX_CONNECTIONS: stops accepting TCP connections while descriptors are
 * nearly gone, instead of spinning.
 *
 * uWS (uSockets) accepts in a loop on a level-triggered listen socket; when `accept4` fails with
 * EMFILE the pending connection stays queued, the socket stays readable, and the event loop wakes
 * at once to fail again: a replica measured at ~93 % CPU doing nothing else while its cluster was
 * idle. MAX_CONNECTIONS keeps Engine.IO connections under the limit, but descriptors also go to
 * connections that never finish a handshake, to HTTP clients and to a burst of connections
 * accepted before their refusal is sent. So the guard counts the process's descriptors every
 * ACCEPT_GUARD_INTERVAL_MS: near the limit it closes the listen socket (queued and new connections
 * are refused by the kernel, and a balancer tries another replica), and it listens again on the
 * same port once enough are free. Node's transport needs no guard: libuv answers EMFILE by
 * accepting and closing the pending connections with a descriptor it keeps in reserve.
 */
export class AcceptGuard {
  private timer: NodeJS.Timeout | undefined;
  private paused = false;
  private readonly pauseAt: number;
  private readonly resumeAt: number;

  constructor(
    limit: number,
    private readonly listener: PausableListener,
    private readonly events: AcceptGuardEvents,
    private readonly count: () => number | undefined = openDescriptors,
  ) {
    ({ pauseAt: this.pauseAt, resumeAt: this.resumeAt } = acceptThresholds(limit));
  }

  start(intervalMs = ACCEPT_GUARD_INTERVAL_MS): void {
    this.timer ??= setInterval(() => this.check(), intervalMs).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  get accepting(): boolean {
    return !this.paused;
  }

  /** One look at the descriptors; public for tests. */
  check(): void {
    const open = this.count();
    if (open === undefined) return;
    if (!this.paused && open >= this.pauseAt) {
      this.listener.pause();
      this.paused = true;
      this.events.paused(open);
    } else if (this.paused && open <= this.resumeAt) {
      if (this.listener.resume()) {
        this.paused = false;
        this.events.resumed(open);
      } else this.events.resumeFailed(open);
    }
  }
}
