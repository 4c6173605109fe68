import { createHash } from 'node:crypto';
import type { RedisClient } from '../cluster/redis.js';
import type { MessageId } from '../protocol/events.js';
import type { RoomName } from '../protocol/rooms.js';
import { lastShared, RING_CAPACITY, type Journal, type Ring, type Track } from './journal.js';

/** A disconnected connection as it is kept for recovery. Never holds the private session id. */
export interface StoredSession {
  v: 1;
  /** The socket id, restored as is. */
  sid: string;
  /** The replica process whose offsets the client holds (`Journal.epoch`). */
  epoch: string;
  /** When it was disconnected, ms since the epoch. */
  at: number;
  /** The token's `sub`; null for an anonymous connection. A restore needs a token for the same user. */
  user: string | null;
  /** Rooms without history (their messages cannot be replayed), besides its own rooms. */
  rooms: RoomName[];
  /** Rooms the backend subscribed it to (`POST /v1/subscribe`): kept even where its claims do not reach. */
  granted: RoomName[];
  /** Per history room, what it had been sent (see `Journal`). */
  history: Record<RoomName, Track>;
}

/**
 * Where sessions wait for their client to come back: in memory on a single node, in Redis when
 * replicas share one, so a client may come back to any replica.
 */
export interface SessionStore {
  /** Keeps `session` for `ttlMs`, with what its rooms' shared deliveries need (from `journal`). */
  save(pid: string, session: StoredSession, journal: Journal, ttlMs: number): Promise<void>;
  /** Takes a session out: a session id works once. */
  take(pid: string): Promise<StoredSession | undefined>;
  /** `lastShared` for replica `epoch`'s room (see journal.ts). */
  shared(epoch: string, room: RoomName, after: number, upTo: number): Promise<MessageId | null | undefined>;
}

/** The session id is a secret: stores and logs only ever see a hash of it. */
export function sessionKey(pid: string): string {
  return createHash('sha256').update(pid).digest('base64url').slice(0, 24);
}

export function createMemorySessionStore(journal: Journal, now: () => number = Date.now): SessionStore {
  const sessions = new Map<string, { session: StoredSession; until: number }>();
  const sweep = setInterval(() => {
    const t = now();
    for (const [k, v] of sessions) if (v.until <= t) sessions.delete(k);
  }, 10_000);
  sweep.unref();
  return {
    async save(pid, session, _journal, ttlMs) {
      sessions.set(sessionKey(pid), { session, until: now() + ttlMs });
    },
    async take(pid) {
      const key = sessionKey(pid);
      const kept = sessions.get(key);
      sessions.delete(key);
      return kept && kept.until > now() ? kept.session : undefined;
    },
    async shared(epoch, room, after, upTo) {
      if (epoch !== journal.epoch) return undefined;
      const ring = journal.ring(room);
      return ring ? lastShared(ring, after, upTo) : null;
    },
  };
}

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
  redis.call('SET', KEYS[2], gone[2] .. ' ' .. gone[1])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1`;

/**
 * Sessions in Redis: one key per session (`<prefix>-session:{<hash of its id>}`, JSON, expiring
 * with the recovery window) and, per replica process and history room, the room's shared
 * deliveries since the process started (`<prefix>-journal:{<epoch>}:<room>`, a sorted set of
 * entry ids by seq, and its floor), written when a session that needs them is saved. The
 * journal keys of one process share a hash slot, so on Redis Cluster one call writes them all.
 */
export function createRedisSessionStore(redis: RedisClient, keyPrefix: string, capacity: number = RING_CAPACITY): SessionStore {
  const sessionKeyOf = (pid: string) => `${keyPrefix}-session:{${sessionKey(pid)}}`;
  const ringKey = (epoch: string, room: RoomName) => `${keyPrefix}-journal:{${epoch}}:${room}`;
  const floorKey = (epoch: string, room: RoomName) => `${keyPrefix}-journal:{${epoch}}:${room}:floor`;
  // Writes of one room's ring, one after another: each sends what the previous one did not.
  const writing = new Map<RoomName, Promise<void>>();

  const storeRing = (epoch: string, room: RoomName, ring: Ring, ttlMs: number): Promise<void> => {
    const run = async () => {
      let from = ring.seqs.length;
      while (from > 0 && ring.seqs[from - 1]! > ring.storedSeq) from--;
      const to = ring.seqs.length;
      // Nothing new: the keys' expiry only needs moving now and then (they outlive sessions by the grace).
      if (from === to && Date.now() - ring.storedAt < JOURNAL_GRACE_MS / 4) return;
      const args: (string | number)[] = [ttlMs, capacity, ring.floor ? `${ring.floor[0]} ${ring.floor[1]}` : ''];
      for (let i = from; i < to; i++) args.push(ring.seqs[i]!, ring.ids[i]!);
      const newest = ring.seqs[to - 1] ?? 0;
      await redis.eval(APPEND_RING, 2, ringKey(epoch, room), floorKey(epoch, room), ...args);
      ring.storedSeq = Math.max(ring.storedSeq, newest);
      ring.storedAt = Date.now();
      // Redis has them now; this replica keeps only what it has not written.
      ring.dropThrough(ring.storedSeq);
    };
    const next = (writing.get(room) ?? Promise.resolve()).then(run, run);
    writing.set(room, next);
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
          return ring ? storeRing(journal.epoch, room, ring, keepMs) : undefined;
        }),
      );
      await redis.set(sessionKeyOf(pid), JSON.stringify(session), 'PX', ttlMs);
    },
    async take(pid) {
      const raw = await redis.getdel(sessionKeyOf(pid));
      if (raw === null) return undefined;
      const session = JSON.parse(raw) as StoredSession;
      return session.v === 1 ? session : undefined;
    },
    async shared(epoch, room, after, upTo) {
      const [found, floor] = await Promise.all([
        redis.zrange(ringKey(epoch, room), upTo, `(${after}`, 'BYSCORE', 'REV', 'LIMIT', 0, 1),
        redis.get(floorKey(epoch, room)),
      ]);
      if (found.length > 0) return found[0]!;
      if (floor === null) return null;
      const [seq, id] = floor.split(' ');
      const floorSeq = Number(seq);
      // Nothing kept in (after, upTo]: either there was nothing, or it was dropped up to the floor.
      if (floorSeq <= after) return null;
      return floorSeq <= upTo ? id! : undefined;
    },
  };
}

/** Journal keys outlive the longest session that may read them by this much. */
const JOURNAL_GRACE_MS = 30_000;
