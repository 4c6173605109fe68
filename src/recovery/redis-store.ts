import { createHash } from 'node:crypto';
import { batchedReads } from '../cluster/read-batch.js';
import type { RedisClient } from '../cluster/redis.js';
import type { RoomName } from '../protocol/rooms.js';
import { answerShared, type Ring } from './ring.js';
import { boundOf, COMMAND_MARKS_PER_KEY, markField, parseStored, sessionKey, waitingKey, waitingKeys, type SessionStore, type StoredSession } from './store.js';
import type { Journal } from './journal.js';

/**
 * Appends a ring's new entries (ARGV[3..]: seq, id pairs) to its sorted set (score: seq), keeps
 * the newest ARGV[2], and records the newest one dropped as the floor ("<seq> <id>"), so that an
 * offset older than what is kept is not mistaken for one with nothing before it.
 */
const APPEND_RING = `
for i = 4, #ARGV, 2 do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[3] ~= '' then
  local had = redis.call('GET', KEYS[2])
  if not had or tonumber(string.match(had, '^%d+')) < tonumber(string.match(ARGV[3], '^%d+')) then
    redis.call('SET', KEYS[2], ARGV[3])
  end
end
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if excess > 0 then
  local gone = redis.call('ZRANGE', KEYS[1], excess - 1, excess - 1, 'WITHSCORES')
  local had = redis.call('GET', KEYS[2])
  if not had or tonumber(string.match(had, '^%d+')) < tonumber(gone[2]) then
    redis.call('SET', KEYS[2], gone[2] .. ' ' .. gone[1])
  end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1`;

/**
 * One waiting key's index (a sorted set of session hashes by expiry, ms, with a fraction that
 * orders saves within one millisecond): adds ARGV[1] until ARGV[2], forgets the expired (before
 * ARGV[3]), keeps the newest ARGV[4] and returns the hashes it dropped; the set lives as long as
 * its longest session.
 */
const INDEX = `
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
local dropped = {}
if excess > 0 then
  dropped = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(last[2])))
return dropped`;

/** Replaces (ARGV[2]) or deletes (ARGV[2] empty) a session, only if it is still the one read (sha1 ARGV[1]). */
const COMPARE_AND_SET = `
local cur = redis.call('GET', KEYS[1])
if not cur or redis.sha1hex(cur) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') end
return 1`;

/**
 * A command mark (store.ts `markCommand`): KEYS[1] the key's marks (a hash of field → ms);
 * ARGV: field, time, ttl ms, most fields. Fields older than the ttl go first; a new field past
 * the bound is kept as `d`.
 */
const MARK = `
local cutoff = tonumber(ARGV[2]) - tonumber(ARGV[3])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) < cutoff then redis.call('HDEL', KEYS[1], all[i]) end
end
local field = ARGV[1]
if redis.call('HEXISTS', KEYS[1], field) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then field = 'd' end
local old = tonumber(redis.call('HGET', KEYS[1], field) or '0')
if tonumber(ARGV[2]) > old then redis.call('HSET', KEYS[1], field, ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

/** Attempts of one change to one session that another writer (a restore, another command) keeps changing. */
const AMEND_ATTEMPTS = 3;

/** Journal keys outlive the longest session that may read them by this much. */
const JOURNAL_GRACE_MS = 30_000;

/**
 * How a process tells the others it is alive: its subscriber connection holds a channel of its
 * own (`<prefix>-alive#<epoch>#`) for as long as it lives. Redis drops the subscription the
 * moment that connection closes (a kill -9 closes it in the kernel), so `PUBSUB NUMSUB` of a
 * process's channel is 0 from then on. Only on a single Redis (or Sentinel's master): a cluster
 * node answers NUMSUB for its own subscribers only.
 *
 * It tells whether the process's subscriber connection holds the channel, which is a little less
 * than whether the process lives: while that connection reconnects, or if its SUBSCRIBE was
 * refused (a Redis ACL without the channel), or for a replica of a version before this one (a
 * rolling upgrade), a living process reads as gone. What that costs is the second look only: a
 * client back within 350 ms of its drop, before its session is written, starts afresh
 * (`recovered: false`) and subscribes again with `since`, as after a kill.
 */
export interface Liveness {
  sub: RedisClient;
  epoch: string;
  onFailure(err: Error): void;
}

/**
 * Sessions in Redis:
 * - one key per session (`<prefix>-session:{<hash of its id>}`, JSON, expiring with the
 *   recovery window);
 * - per waiting key (user, socket id, `jti`), an index of its sessions
 *   (`<prefix>-waiting:{<hash of the key>}`, at most `perKey` of them, expiring with the last);
 * - per user or socket id a control command named, its marks for restores from portable offsets
 *   (`<prefix>-marks:{<hash of the key>}`, a hash of at most `COMMAND_MARKS_PER_KEY` fields,
 *   expiring a while after the last command);
 * - per replica process, with `liveness`, a channel its subscriber connection holds while it
 *   lives (`Liveness`); no key;
 * - per replica process and history room, the room's shared deliveries
 *   (`<prefix>-journal:{<epoch>}:<room>`, a sorted set of entry ids by seq, and its floor),
 *   written when a session that needs them is saved. The journal keys of one process share a hash
 *   slot, so on Redis Cluster one call writes them all; every other call touches one key.
 */
export function createRedisSessionStore(redis: RedisClient, keyPrefix: string, perKey: number, capacity: number, liveness?: Liveness, perAddress = 0): SessionStore {
  const reads = batchedReads(redis);
  const aliveChannel = (epoch: string) => `${keyPrefix}-alive#${epoch}#`;
  if (liveness) {
    // ioredis subscribes again after every reconnect; a subscribe sent while Redis is away waits for it.
    liveness.sub.subscribe(aliveChannel(liveness.epoch)).catch((err: Error) => liveness.onFailure(err));
  }
  const sessionKeyOf = (h: string) => `${keyPrefix}-session:{${h}}`;
  /** A waiting key (a user, a socket id, a `jti`) as it names Redis keys: hashed. */
  const hashOf = (key: string) => createHash('sha256').update(key).digest('base64url').slice(0, 24);
  const indexKeyOf = (key: string) => `${keyPrefix}-waiting:{${hashOf(key)}}`;
  const marksKeyOf = (key: string) => `${keyPrefix}-marks:{${hashOf(key)}}`;
  const ringKey = (epoch: string, room: RoomName) => `${keyPrefix}-journal:{${epoch}}:${room}`;
  const floorKey = (epoch: string, room: RoomName) => `${keyPrefix}-journal:{${epoch}}:${room}:floor`;
  // Writes of one room's ring, one after another: each sends what the previous one did not.
  const writing = new Map<RoomName, Promise<void>>();
  /** Orders this replica's saves within one millisecond in the indexes (a thousandth each; a double holds it at today's times). */
  let tick = 0;

  const storeRing = (journal: Journal, room: RoomName, ring: Ring, ttlMs: number): Promise<void> => {
    const run = async () => {
      let from = ring.size;
      while (from > 0 && ring.seqAt(from - 1) > ring.storedSeq) from--;
      const to = ring.size;
      // Nothing new: the keys' expiry only needs moving now and then (they outlive sessions by the grace).
      if (from === to && Date.now() - ring.storedAt < JOURNAL_GRACE_MS / 4) return;
      const floor = ring.floorSeq > 0 ? `${ring.floorSeq} ${ring.floorMs === -1 ? `?${ring.floorSeq}` : `${ring.floorMs}-${ring.floorSub}`}` : '';
      const args: (string | number)[] = [ttlMs, capacity, floor];
      // An id that cannot be written back is stored as "?<seq>": found, it means "cannot be told".
      for (let i = from; i < to; i++) args.push(ring.seqAt(i), ring.idAt(i) ?? `?${ring.seqAt(i)}`);
      const newest = to > 0 ? ring.seqAt(to - 1) : 0;
      await redis.eval(APPEND_RING, 2, ringKey(journal.epoch, room), floorKey(journal.epoch, room), ...args);
      // Redis has them now; this replica keeps only what it has not written.
      journal.stored(room, ring, newest);
    };
    const next = (writing.get(room) ?? Promise.resolve()).then(run, run);
    writing.set(room, next);
    // `next` itself goes to the caller, who handles its failure; this copy only clears the entry.
    void next.finally(() => {
      if (writing.get(room) === next) writing.delete(room);
    }).catch(() => {});
    return next;
  };

  return {
    async save(pid, session, journal, ttlMs) {
      // The journal first: a session found by another replica must find its rooms' journals.
      const keepMs = ttlMs + JOURNAL_GRACE_MS;
      await Promise.all(
        Object.keys(session.history).map((room) => {
          const ring = journal.ring(room);
          return ring ? storeRing(journal, room, ring, keepMs) : undefined;
        }),
      );
      const h = sessionKey(pid);
      const now = Date.now();
      // Indexed before it exists: a command that finds the hash before the session is written
      // finds nothing to change, and a replica waits for its saves under way before it reports.
      tick = (tick + 1) % 1000;
      const until = now + ttlMs + tick / 1000;
      const keys = waitingKeys(session).filter((k) => boundOf(k, perKey, perAddress) > 0);
      const dropped = (await Promise.all(keys.map((k) => redis.eval(INDEX, 1, indexKeyOf(k), h, until, now, boundOf(k, perKey, perAddress)) as Promise<string[]>))).flat();
      await redis.set(sessionKeyOf(h), JSON.stringify(session), 'PX', ttlMs);
      const gone = await Promise.all(dropped.filter((d) => d !== h).map((d) => redis.del(sessionKeyOf(d))));
      return gone.reduce((n, g) => n + g, 0);
    },
    async peek(pid) {
      // Every client of a killed replica asks, most for a session never saved: one write per turn.
      const raw = await reads.get(sessionKeyOf(sessionKey(pid)));
      return raw === null ? undefined : parseStored(raw);
    },
    async take(pid) {
      const raw = await redis.getdel(sessionKeyOf(sessionKey(pid)));
      return raw === null ? undefined : parseStored(raw);
    },
    async shared(epoch, room, after, upTo) {
      const [found, floor] = await Promise.all([
        redis.zrange(ringKey(epoch, room), upTo, `(${after}`, 'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES'),
        redis.get(floorKey(epoch, room)),
      ]);
      const idOf = (member: string | undefined) => (member === undefined || member.startsWith('?') ? undefined : member);
      const newest = found.length >= 2 ? { seq: Number(found[1]), id: idOf(found[0]) } : undefined;
      const space = floor?.indexOf(' ') ?? -1;
      const kept = floor && space > 0 ? { seq: Number(floor.slice(0, space)), id: idOf(floor.slice(space + 1)) } : undefined;
      return answerShared(newest, kept, after, upTo);
    },
    async mayStillSave(epoch) {
      // This process lives, whatever its own subscriber connection is doing right now.
      if (!liveness || epoch === liveness.epoch) return true;
      return (await reads.numsub(aliveChannel(epoch))) > 0;
    },
    async markCommand(key, mark, at, ttlMs) {
      await redis.eval(MARK, 1, marksKeyOf(waitingKey(key)), markField(mark), at, ttlMs, COMMAND_MARKS_PER_KEY);
    },
    async commandMarks(key) {
      const fields = await redis.hgetall(marksKeyOf(waitingKey(key)));
      return new Map(Object.entries(fields).flatMap(([f, at]) => (Number.isFinite(Number(at)) ? [[f, Number(at)] as const] : [])));
    },
    async amend(key, amend, changed) {
      const hashes = await redis.zrangebyscore(indexKeyOf(waitingKey(key)), Date.now(), '+inf');
      await Promise.all(
        hashes.map(async (h) => {
          for (let attempt = 0; attempt < AMEND_ATTEMPTS; attempt++) {
            const raw = await redis.get(sessionKeyOf(h));
            const session = raw === null ? undefined : readable(raw);
            const next = session && amend(session);
            if (raw === null || next === undefined) return;
            const sha = createHash('sha1').update(raw).digest('hex');
            const done = (await redis.eval(COMPARE_AND_SET, 1, sessionKeyOf(h), sha, next === null ? '' : JSON.stringify(next))) as number;
            if (done === 1) {
              changed.add(h);
              return;
            }
          }
        }),
      );
    },
  };
}

/**
 * A session a control command can change, or none. One that cannot be parsed is left as it is:
 * nothing is lost, since it cannot be restored either (`take` refuses it, counted where the
 * restore is: `herald_stored_data_invalid_total{what="session"}`).
 */
function readable(raw: string): StoredSession | undefined {
  try {
    return parseStored(raw);
  } catch {
    return undefined;
  }
}
