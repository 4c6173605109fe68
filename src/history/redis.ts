import { Cluster } from 'ioredis';
import { batchedReads } from '../cluster/read-batch.js';
import type { RedisClient } from '../cluster/redis.js';
import { HeraldError } from '../errors.js';
import { compareIds } from '../protocol/ids.js';
import type { Logger } from '../observability/logger.js';
import { throttle } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { HistoryBackend, HistoryEntry } from './types.js';

/**
 * Append and broadcast in one script, so Redis runs them as one step: the stream entry and the
 * published message carry the same id and either both happen or neither does. The message is
 * `<id> <json>`, the JSON being what the publisher serialized once.
 */
const PUBLISH_SCRIPT = `
if KEYS[2] then
  local prev = redis.call('GET', KEYS[2])
  if prev then return {prev, 1} end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call(ARGV[5], ARGV[4], id .. ' ' .. ARGV[3])
if KEYS[2] then redis.call('SET', KEYS[2], id, 'EX', ARGV[2]) end
return {id, 0}
`;

/**
 * {newest id, 0}, or, for a room without history yet, {id of a new position marker (field `g`), 1}
 * when ARGV[3] allows creating its stream, else nil.
 */
const POSITION_SCRIPT = `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then return {last[1][1], 0} end
if ARGV[3] ~= '1' then return false end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'g', '1')
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {id, 1}
`;

interface Wire {
  room: string;
  event: string;
  data: unknown;
  ts: number;
}

export interface RedisHistoryOptions {
  /** Commands (script, XRANGE). */
  pub: RedisClient;
  /** A subscriber connection (ioredis resubscribes after reconnects). */
  sub: RedisClient;
  keyPrefix: string;
  /**
   * Sharded: each room has its own shard channel (in the slot of its stream, so the script stays
   * single-slot), SPUBLISHed and SSUBSCRIBEd only while this replica has members there.
   * Classic: one channel every replica subscribes to.
   */
  sharded: boolean;
  logger: Logger;
  metrics: Pick<Metrics, 'storedDataInvalid' | 'roomSubscribeFailed'>;
}

export function createRedisHistory(opts: RedisHistoryOptions): HistoryBackend {
  const { pub, sub, logger, sharded, metrics } = opts;
  const reads = batchedReads(pub);
  const channel = `${opts.keyPrefix}-history#`;
  const roomChannel = (room: string) => (sharded ? `${opts.keyPrefix}-history#{${room}}` : channel);
  // Braces make every key of one room hash to one Redis Cluster slot.
  const key = (room: string) => `${opts.keyPrefix}-history:{${room}}`;
  let handler: (entry: HistoryEntry) => void = () => {};
  const badEntryLog = throttle(10_000);
  /** An entry that cannot be read is skipped, counted and logged: it is not herald's, or it is damaged. */
  const unreadable = (err: HeraldError, where: { channel: string } | { room: string; id: string }) => {
    metrics.storedDataInvalid('history_entry');
    if (badEntryLog.due()) logger.warn({ ...where, code: err.code, err: err.message }, 'skipped a history entry that cannot be read');
  };
  const entriesOf = (room: string, rows: [string, string[]][]) =>
    rows.flatMap(([id, fields]) => {
      try {
        return entryOf(id, fields);
      } catch (err) {
        unreadable(err as HeraldError, { room, id });
        return [];
      }
    });

  const onMessage = (ch: string, message: string) => {
    if (sharded ? !ch.startsWith(channel) : ch !== channel) return;
    try {
      handler(decode(message));
    } catch (err) {
      if (!(err instanceof HeraldError)) throw err;
      unreadable(err, { channel: ch });
    }
  };
  /** Sharded: rooms whose channel this replica subscribes to, with the SSUBSCRIBE in flight or done. */
  const watched = new Map<string, Promise<void>>();
  /**
   * Classic: the SUBSCRIBE of the one history channel. A room's entries reach this replica only
   * once it is answered, so `watch` waits for it (a subscribe acked before it would miss entries).
   */
  let subscribed: Promise<void> = Promise.resolve();
  if (sharded) {
    sub.on('smessage', onMessage);
  } else {
    // A SUBSCRIBE that timed out while Redis was unreachable is still sent once it connects.
    subscribed = sub.subscribe(channel).then(
      () => undefined,
      (err: Error) => {
        metrics.roomSubscribeFailed('history');
        logger.warn({ err: err.message }, 'history subscribe failed; ioredis sends it again on connect');
      },
    );
    sub.on('message', onMessage);
  }
  let gapHandler: (resumed: Promise<void>) => void = () => {};
  // Pub/sub loses what is published while the subscriber connection is down. ioredis resubscribes
  // after a reconnect; the same SUBSCRIBE again is answered after its resubscription, so once it
  // is, entries flow again and the gap can be read from the streams without missing any.
  // A Redis Cluster's shard subscribers do not reconnect themselves: ioredis replaces a lost one
  // (`-subscriber`) and resubscribes the group (`subscribersReady`).
  const [lostEvent, backEvent] = sub instanceof Cluster ? ['-subscriber', 'subscribersReady'] : ['close', 'ready'];
  /** Set while the subscriber is lost: resolves the gap's `resumed`. */
  let resume: (() => void) | undefined;
  sub.on(lostEvent, () => {
    if (resume) return;
    const resumed = new Promise<void>((r) => (resume = r));
    gapHandler(resumed);
  });
  sub.on(backEvent, () => {
    const done = resume;
    if (!done) return;
    const again = (sharded ? Promise.all([...watched.keys()].map((room) => sub.ssubscribe(roomChannel(room)))) : sub.subscribe(channel)).then(
      () => {
        if (resume !== done) return;
        resume = undefined;
        logger.info({ rooms: sharded ? watched.size : undefined }, 'history subscriber back after a gap; refilling local rooms');
        done();
      },
      (err: Error) => {
        // The gap stays open (no refill, live entries held) until a reconnect resubscribes.
        metrics.roomSubscribeFailed('history');
        logger.warn({ err: err.message }, 'history resubscribe failed after a gap; retried at the next reconnect');
      },
    );
    if (!sharded) subscribed = again;
  });

  return {
    async publish(room, event, data, policy, dedupeKey) {
      const ts = Date.now();
      const json = JSON.stringify({ room, event, data, ts } satisfies Wire);
      // The dedupe key shares the room's hash tag, so the script stays single-slot on a cluster.
      const keys = dedupeKey === undefined ? [key(room)] : [key(room), `${opts.keyPrefix}-dedupe:{${room}}:${dedupeKey}`];
      const [id, dup] = (await pub.eval(
        PUBLISH_SCRIPT, keys.length, ...keys, policy.size, policy.ttlSeconds, json, roomChannel(room), sharded ? 'SPUBLISH' : 'PUBLISH',
      )) as [string, number];
      return { entry: { id, room, event, data, ts }, duplicate: dup === 1 };
    },
    async read(room, since, limit) {
      if (since !== undefined) {
        // The entry `since` must still be there, or entries after it may have been trimmed. One
        // XRANGE from `since` itself (inclusive) answers both in one step, so no trim can fall
        // between them: a stream is trimmed from its oldest end only, so if its first row is
        // `since`, every entry after it is still there.
        const rows = await reads.xrange(key(room), since, '+', 'COUNT', limit + 1);
        if (rows.length === 0 || compareIds(rows[0]![0], since) !== 0) return { entries: [], recovered: false };
        return { entries: entriesOf(room, rows.slice(1)), recovered: true };
      }
      // One more than asked: the first row may be the position marker, which is not an entry.
      const rows = await pub.xrange(key(room), '-', '+', 'COUNT', limit + 1);
      return { entries: entriesOf(room, rows).slice(0, limit), recovered: true };
    },
    async latest(room, count) {
      if (count < 1) return [];
      // The position marker, if among them, is the stream's oldest row: then every entry is too.
      const rows = await pub.xrevrange(key(room), '+', '-', 'COUNT', count);
      return entriesOf(room, rows.reverse());
    },
    async position(room, policy, create = true) {
      const found = (await pub.eval(POSITION_SCRIPT, 1, key(room), policy.size, policy.ttlSeconds, create ? '1' : '0')) as [string, number] | null;
      return found ? { id: found[0], created: found[1] === 1 } : undefined;
    },
    onEntry(h) {
      handler = h;
    },
    watch(room) {
      if (!sharded) return subscribed;
      let p = watched.get(room);
      if (!p) {
        p = sub.ssubscribe(roomChannel(room)).then(
          () => undefined,
          (err: Error) => {
            watched.delete(room);
            throw err;
          },
        );
        watched.set(room, p);
      }
      return p;
    },
    unwatch(room) {
      if (!sharded || !watched.delete(room)) return;
      // Nothing can be lost: a channel left subscribed only brings entries with no member here to
      // deliver them to (the next `watch` of the room subscribes it again regardless).
      sub.sunsubscribe(roomChannel(room)).catch((err: Error) => logger.debug({ room, err: err.message }, 'history room unsubscribe failed'));
    },
    onGap(h) {
      gapHandler = h;
    },
    async close() {},
  };
}

/** A published entry, `<id> <json>`; throws `stored_data_invalid` for anything else. */
function decode(message: string): HistoryEntry {
  const space = message.indexOf(' ');
  if (space <= 0) throw new HeraldError('stored_data_invalid', 'A history message has no id.');
  // A slice is a view that keeps the whole message alive for as long as the id is kept (the
  // recovery journal, the last id per room): the id gets bytes of its own.
  const id = Buffer.from(message.slice(0, space), 'latin1').toString('latin1');
  return entryOf(id, ['m', message.slice(space + 1)])[0]!;
}

/**
 * Parses a stored or published entry: none for a room's position marker (no `m` field); throws
 * `stored_data_invalid` for a field that is not herald's JSON.
 */
function entryOf(id: string, fields: string[]): HistoryEntry[] {
  const at = fields.indexOf('m');
  const json = at === -1 ? undefined : fields[at + 1];
  if (json === undefined) return [];
  let w: Partial<Wire> | null;
  try {
    w = JSON.parse(json) as Partial<Wire> | null;
  } catch (err) {
    throw new HeraldError('stored_data_invalid', `History entry ${id} is not JSON.`, { cause: err });
  }
  if (typeof w?.room !== 'string' || typeof w.event !== 'string' || typeof w.ts !== 'number') {
    throw new HeraldError('stored_data_invalid', `History entry ${id} lacks room, event or ts.`);
  }
  return [{ id, room: w.room, event: w.event, data: w.data, ts: w.ts }];
}
