/**
 * A token bucket: `rate` tokens a second, holding at most `burst`. `take()` spends one if there is
 * one. Time is passed in so callers (and tests) decide the clock.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Returns a token taken for something that then cost nothing. */
  giveBack(): void {
    this.tokens = Math.min(this.burst, this.tokens + 1);
  }

  /** True when the bucket would be full again by `now`: nothing to remember for this key. */
  idle(now: number): boolean {
    return this.tokens + ((now - this.last) / 1000) * this.rate >= this.burst;
  }
}

/**
 * One bucket per key (client IP), bounded in memory: full buckets are forgotten on a sweep, and
 * past `maxKeys` new keys share a single overflow bucket rather than growing the map.
 *
 * A sweep runs on a timer (unref'd, only while the map holds keys) as soon as a bucket could be
 * full again (one token's refill time, 1 s to 60 s), so that after a connect storm the map does not
 * keep an entry per address of the clients that stay connected: a full bucket is the same as none.
 */
export class KeyedLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly overflow: TokenBucket;
  private lastSweep: number;
  private readonly sweepMs: number;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly maxKeys = 100_000,
    now = Date.now(),
  ) {
    this.overflow = new TokenBucket(rate, burst, now);
    this.lastSweep = now;
    this.sweepMs = Math.min(60_000, Math.max(1000, rate > 0 ? 1000 / rate : 60_000));
  }

  take(key: string, now = Date.now()): boolean {
    if (now - this.lastSweep > 60_000) this.sweep(now);
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= this.maxKeys) return this.overflow.take(now);
      this.buckets.set(key, (bucket = new TokenBucket(this.rate, this.burst, now)));
      this.sweeper ??= setTimeout(this.swept, this.sweepMs).unref();
    }
    return bucket.take(now);
  }

  /** Returns a token `key` took for something that then cost nothing. */
  giveBack(key: string): void {
    (this.buckets.get(key) ?? this.overflow).giveBack();
  }

  /** Keys held now (tests and metrics). */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    for (const [k, b] of this.buckets) if (b.idle(now)) this.buckets.delete(k);
    this.lastSweep = now;
  }

  private readonly swept = (): void => {
    this.sweep(Date.now());
    this.sweeper = this.buckets.size > 0 ? setTimeout(this.swept, this.sweepMs).unref() : undefined;
  };
}
