import { performance } from 'node:perf_hooks';

/** How often the watch's timer runs: a few microseconds of work per tick. */
export const LOOP_TICK_MS = 100;

/**
 * Whether this process's event loop is behind by more than `maxLagMs`, for refusing new
 * handshakes while it is (HANDSHAKE_MAX_LAG_MS).
 *
 * A timer runs every LOOP_TICK_MS and notes how late it ran. The loop is behind while the last
 * tick came more than `maxLagMs` late (until the next one comes on time), and also while no tick
 * has come for `maxLagMs` past when one was due: a single turn of the loop that takes seconds (a
 * burst of thousands of handshakes accepted at once, a stopped or starved process) is seen
 * during that turn, not only after it. Asking costs one clock read.
 *
 * Why: a handshake answered after the client gave up (socket.io-client's `timeout`, 20 s by
 * default) is work spent for nothing, and a client that times out comes back and costs it again.
 * In a reconnect storm on a saturated machine that feeds itself (bench:scale, a 5 s client
 * timeout: 178,542 timed-out attempts in 120 s and 10,050 fans still out). Refusing at once is
 * cheap, and the client's own backoff spreads the crowd out.
 */
export class LoopLag {
  private lastTick = performance.now();
  private lateBy = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly maxLagMs: number,
    private readonly tickMs = LOOP_TICK_MS,
  ) {}

  start(): this {
    this.lastTick = performance.now();
    this.timer ??= setInterval(() => {
      const now = performance.now();
      this.lateBy = now - this.lastTick - this.tickMs;
      this.lastTick = now;
    }, this.tickMs).unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** How far behind the loop is now, in ms: the later of the last tick's lateness and the wait for the next one. */
  lagMs(): number {
    return Math.max(this.lateBy, performance.now() - this.lastTick - this.tickMs);
  }

  behind(): boolean {
    return this.timer !== undefined && this.lagMs() > this.maxLagMs;
  }
}
