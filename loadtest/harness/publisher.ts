import { setTimeout as delay } from 'node:timers/promises';
import { HttpPipeline, postOnce, type HttpAnswer } from './http-pipeline.js';
import { signedPublish, type PusherApp } from './pusher.js';
import { loopbackAddresses } from './workers.js';

export interface PublishTarget {
  /** Base URLs to publish through (round robin). */
  urls: string[];
  key?: string;
  /**
   * Set: publish through the Pusher HTTP API of this app (soketi), each request signed and on a
   * connection of its own (soketi closes a connection that pipelines), instead of herald's
   * `POST /v1/publish` pipelined.
   */
  pusher?: PusherApp;
}

/** Source addresses for the Pusher publisher's one-request connections. */
const PUBLISH_ADDRESSES = loopbackAddresses(16);

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
  opts: { inFlight?: number; maxMessages?: number; /** Fields every message carries besides `seq` and `sent` (a score object, for deltas). */ fields?: object } = {},
): Promise<{ accepted: Record<string, number>; failed: number; achievedRate: number }> {
  const total = Math.min(Math.round(ratePerSecond * seconds), opts.maxMessages ?? 2_000_000);
  const seqs: Record<string, number> = Object.fromEntries(rooms.map((r) => [r, 0]));
  const accepted: Record<string, number> = Object.fromEntries(rooms.map((r) => [r, 0]));
  let failed = 0;
  const headers: Record<string, string> = target.key ? { authorization: `Bearer ${target.key}` } : {};
  const app = target.pusher;
  const servers = app ? [] : target.urls.map((u) => new HttpPipeline(u));
  const post = (i: number, room: string, data: { seq: number; sent: number }): Promise<HttpAnswer> => {
    if (opts.fields) data = { ...opts.fields, ...data };
    if (!app) return servers[i % servers.length]!.post('/v1/publish', JSON.stringify({ room, event: 'load', data }), headers);
    const { path, body } = signedPublish(app, room, 'load', JSON.stringify(data));
    return postOnce(target.urls[i % target.urls.length]!, path, body, { localAddress: PUBLISH_ADDRESSES[i % PUBLISH_ADDRESSES.length] });
  };
  const started = Date.now();
  const inFlight = new Set<Promise<void>>();
  for (let i = 0; i < total; i++) {
    // Pace against the clock, not by sleeping a fixed step: late sends catch up.
    const due = started + (i * 1000) / ratePerSecond;
    const wait = due - Date.now();
    if (wait > 1) await delay(wait);
    const room = rooms[i % rooms.length]!;
    const p: Promise<void> = post(i, room, { seq: ++seqs[room]!, sent: Date.now() })
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
