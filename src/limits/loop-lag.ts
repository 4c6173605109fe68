import { performance } from 'node:perf_hooks';

/** How often the watch's timer runs: a few microseconds of work per tick. */
export const LOOP_TICK_MS = 100;

/**
 * Weight of the newest tick in the smoothed lag (an exponentially weighted average): a single
 * late tick moves it by a quarter of its lateness, so a one-off turn of up to 4 × the limit (a
 * broadcast to every socket of the replica) does not trip it, and lag that lasts does within a
 * few ticks.
 */
export const LOOP_LAG_WEIGHT = 0.25;

/**
 * Whether this process's event loop has been behind by more than `maxLagMs`, for refusing new
 * handshakes while it is (HANDSHAKE_MAX_LAG_MS).
 *
 * A timer runs every LOOP_TICK_MS and notes how late it ran; the lag is the smoothed lateness
 * (LOOP_LAG_WEIGHT). While a turn of the loop is still running, the tick it is holding back counts
 * as late by as long as it has waited so far, so a process stopped or starved for seconds is seen
 * during the turn that meets its backlog, not only after it. Asking costs one clock read.
 *
 * Why: a handshake answered after its client gave up (socket.io-client's `timeout`, 20 s by
 * default) is work spent for nothing, and the client comes back and costs it again: in a reconnect
 * storm on a saturated machine that feeds itself (bench:scale, clients that give up after 5 s:
 * 178,542 timed-out attempts and 11,685 fans still out 120 s after a kill). Refusing at once is
 * cheap, and the clients' backoff spreads the crowd out. Smoothed, because refusing on one slow
 * turn cost more than it saved: at 1,000 ms without smoothing, the same bench's ordinary kill
 * storm (nobody timing out) refused 18,129 handshakes and took 42.6 s instead of 24.2.
 */
export class LoopLag {
  private lastTick = performance.now();
  private smoothed = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly maxLagMs: number,
    private readonly tickMs = LOOP_TICK_MS,
  ) {}

  start(): this {
    this.lastTick = performance.now();
    this.timer ??= setInterval(() => {
      const now = performance.now();
      this.smoothed += (Math.max(0, now - this.lastTick - this.tickMs) - this.smoothed) * LOOP_LAG_WEIGHT;
      this.lastTick = now;
    }, this.tickMs).unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The smoothed lag in ms, with the tick the current turn is holding back counted as if it ran now. */
  lagMs(): number {
    const waiting = performance.now() - this.lastTick - this.tickMs;
    return waiting > 0 ? this.smoothed + (waiting - this.smoothed) * LOOP_LAG_WEIGHT : this.smoothed;
  }

  behind(): boolean {
    return this.timer !== undefined && this.lagMs() > this.maxLagMs;
  }
}
