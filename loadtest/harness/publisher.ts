import { setTimeout as delay } from 'node:timers/promises';
import { HttpPipeline } from './http-pipeline.js';

export interface PublishTarget {
  /** Base URLs to publish through (round robin). */
  urls: string[];
  key?: string;
}

/**
 * Publishes `{seq, sent}` to rooms at a fixed total rate for `seconds`, bounded in count, keeping
 * up to `inFlight` requests open. Sequence numbers are per room, so subscribers can count gaps.
 * Returns how many were accepted per room and the achieved rate.
 */
export async function publishAtRate(
  target: PublishTarget,
  rooms: string[],
  ratePerSecond: number,
  seconds: number,
  opts: { inFlight?: number; maxMessages?: number } = {},
): Promise<{ accepted: Record<string, number>; failed: number; achievedRate: number }> {
  const total = Math.min(Math.round(ratePerSecond * seconds), opts.maxMessages ?? 2_000_000);
  const seqs: Record<string, number> = Object.fromEntries(rooms.map((r) => [r, 0]));
  const accepted: Record<string, number> = Object.fromEntries(rooms.map((r) => [r, 0]));
  let failed = 0;
  const headers: Record<string, string> = target.key ? { authorization: `Bearer ${target.key}` } : {};
  const servers = target.urls.map((u) => new HttpPipeline(u));
  const started = Date.now();
  const inFlight = new Set<Promise<void>>();
  for (let i = 0; i < total; i++) {
    // Pace against the clock, not by sleeping a fixed step: late sends catch up.
    const due = started + (i * 1000) / ratePerSecond;
    const wait = due - Date.now();
    if (wait > 1) await delay(wait);
    const room = rooms[i % rooms.length]!;
    const body = JSON.stringify({ room, event: 'load', data: { seq: ++seqs[room]!, sent: Date.now() } });
    const p: Promise<void> = servers[i % servers.length]!
      .post('/v1/publish', body, headers)
      .then((res) => {
        if (res.status === 200) accepted[room]!++;
        else failed++;
      })
      .catch(() => {
        failed++;
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= (opts.inFlight ?? 64)) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  for (const s of servers) s.close();
  return { accepted, failed, achievedRate: (total / Math.max(1, Date.now() - started)) * 1000 };
}
