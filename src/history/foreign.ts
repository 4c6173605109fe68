import type { BroadcastOptions } from 'socket.io-adapter';
import type { HeraldAdapterDeps, Packet } from '../cluster/adapter.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { SYSTEM_EVENT_PREFIX } from '../protocol/events.js';
import type { PatternTable } from '../protocol/patterns.js';
import type { RoomName } from '../protocol/rooms.js';

/** At most one warning per this long; the count in between is in it and in the metric. */
const WARN_EVERY_MS = 60_000;

/**
 * Keeps broadcasts that bypass history out of history rooms. herald's replicas never publish a
 * client event into a history room through the adapter: it goes into the room's stream, and
 * every replica delivers it from there (src/history/rooms.ts). So a broadcast that reaches the
 * adapter from Redis for a history room comes from outside herald: `@socket.io/redis-emitter`, or
 * a replica whose HISTORY_ROOMS differs. It is not delivered to that room (it is to the other
 * rooms it names): the members would get a message that is in no history, whose `meta.id` is no
 * offset (a `subscribe {since}` with it is refused), that a client which missed it never gets
 * back, and that connection recovery cannot place. Counted
 * (`herald_history_broadcasts_refused_total`) and logged, at most once a minute, with the room
 * and the ways that keep history: `POST /v1/publish`, or a stream of INGEST_STREAMS.
 */
export function refusingForeignHistory(policies: PatternTable<unknown>, metrics: Pick<Metrics, 'historyBroadcastRefused'>, logger: Logger): NonNullable<HeraldAdapterDeps['admitRemote']> {
  const warn = throttle(WARN_EVERY_MS);
  let unwarned = 0;
  return (packet: Packet, opts: BroadcastOptions, sender: string) => {
    // To every connection (no room), or one of herald's own events (presence's herald:join): not a message of a room.
    if (opts.rooms.size === 0) return opts;
    const event = packet.data?.[0];
    if (typeof event === 'string' && event.startsWith(SYSTEM_EVENT_PREFIX)) return opts;
    let refused: RoomName[] | undefined;
    for (const room of opts.rooms) if (policies.match(room) !== undefined) (refused ??= []).push(room);
    if (!refused) return opts;
    metrics.historyBroadcastRefused(refused.length);
    unwarned += refused.length;
    if (warn.due()) {
      logger.warn(
        { rooms: refused, event, sender, refused: unwarned },
        'a broadcast into a history room that bypassed history (@socket.io/redis-emitter?) was not delivered there: publish with POST /v1/publish, or append to a stream of INGEST_STREAMS, to keep history',
      );
      unwarned = 0;
    }
    if (refused.length === opts.rooms.size) return undefined;
    return { ...opts, rooms: new Set([...opts.rooms].filter((room) => !refused.includes(room))) };
  };
}
