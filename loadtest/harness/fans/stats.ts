/**
 * Counting for the fans scenario, in shapes that add up across client processes: latency
 * histograms in whole milliseconds (exact percentiles, mergeable, a fixed 240 KB each) and refusal
 * counts by kind.
 */

/** Latencies from 0 to this many milliseconds get a bucket each; longer ones share the last. */
const MAX_MS = 60_000;

/** A histogram of milliseconds, 1 ms wide buckets. */
export class Histogram {
  readonly counts = new Uint32Array(MAX_MS + 1);
  total = 0;

  add(ms: number): void {
    this.counts[ms <= 0 ? 0 : ms >= MAX_MS ? MAX_MS : Math.round(ms)]!++;
    this.total++;
  }

  /** The non-empty buckets as [ms, count] pairs: what travels over IPC. */
  toPairs(): [number, number][] {
    const out: [number, number][] = [];
    for (let i = 0; i < this.counts.length; i++) if (this.counts[i]) out.push([i, this.counts[i]!]);
    return out;
  }

  addPairs(pairs: [number, number][]): void {
    for (const [ms, n] of pairs) {
      this.counts[ms]! += n;
      this.total += n;
    }
  }

  /** The smallest latency at or below which a share `q` of the samples lie; NaN when empty. */
  quantile(q: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return i;
    }
    return MAX_MS;
  }

  get max(): number {
    for (let i = this.counts.length - 1; i >= 0; i--) if (this.counts[i]) return i;
    return NaN;
  }
}

/**
 * Why a connection attempt failed, from the harness WebSocket client's close reason: the HTTP
 * status of a refused handshake (`503`, `403`, ...), a socket error code (`ECONNREFUSED`,
 * `ECONNRESET`), a Socket.IO CONNECT refusal (`connect_error:<code>`), or `closed` (the server
 * closed it before the handshake was answered), `timeout`.
 */
export function refusalKind(reason: string): string {
  const status = /^handshake: HTTP\/1\.1 (\d{3})/.exec(reason);
  if (status) return status[1]!;
  const code = /\b(E[A-Z]+)\b/.exec(reason);
  if (code) return code[1]!;
  if (reason.startsWith('connect_error:') || reason === 'timeout') return reason;
  return 'closed';
}

export function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}
