import type { Heartbeat } from '../cluster/heartbeat.js';
import type { RedisClient } from '../cluster/redis.js';
import { throttle, type Logger } from '../observability/logger.js';
import { keyOf, subjectOf, type Announce, type Subject, type Transitions } from './transitions.js';

/**
 * Per subject, in its room's hash slot: `:holders`, the set of replica instances holding it, and
 * `:state`, `on` (announced started) or `off:<deadline ms>` (nobody holds it; ends at the
 * deadline unless held again). Absent state: not started. Redis's clock decides deadlines, so
 * replicas whose clocks disagree still agree on them.
 */
const HOLD = `
redis.call('SADD', KEYS[1], ARGV[1])
local s = redis.call('GET', KEYS[2])
if s == 'on' then return 0 end
redis.call('SET', KEYS[2], 'on')
if s then return 0 end
return 1`;

/** Returns the deadline when this release left the subject held by nobody, else -1. */
const RELEASE = `
redis.call('SREM', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) > 0 or redis.call('GET', KEYS[2]) ~= 'on' then return -1 end
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
redis.call('SET', KEYS[2], 'off:' .. deadline)
return deadline`;

/** {1, deadline}: ended now, by this call; {2, ms}: not yet, ask again in ms; {0, 0}: nothing to end. */
const VACATE = `
local s = redis.call('GET', KEYS[2])
if redis.call('SCARD', KEYS[1]) > 0 or not s or string.sub(s, 1, 4) ~= 'off:' then return {0, 0} end
local deadline = tonumber(string.sub(s, 5))
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now < deadline then return {2, deadline - now} end
redis.call('DEL', KEYS[1], KEYS[2])
return {1, deadline}`;

/** Removes a pending end from the index unless a newer release rescheduled it. */
const UNSCHEDULE = `if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1])) == tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end return 0`;

export interface RedisTransitionsOptions {
  redis: RedisClient;
  keyPrefix: string;
  heartbeat: Heartbeat;
  delayMs: number;
  /** How often this replica looks for replicas whose heartbeat stopped, and for ends nobody ran. */
  sweepMs: number;
  /** What this replica holds now: written again whenever the heartbeat is renewed (a connection, a reconnect, found counted as gone). */
  held: () => readonly Subject[];
  announce: Announce;
  logger: Logger;
}

/**
 * Transitions across replicas. Besides the per-subject keys, three indexes (separate keys, so
 * this works on a Redis Cluster; each is written before the step it lets another replica redo):
 * `-webhook-holders`, every holder instance; `-webhook-holder:<holder>`, the subjects it holds;
 * `-webhook-vacating`, subjects waiting out their delay, scored by deadline.
 *
 * The replica whose release emptied a subject ends it after the delay. Every `sweepMs` each
 * replica also (a) releases, on behalf of every holder whose heartbeat stopped, everything that
 * holder held, and (b) ends what is overdue in `-webhook-vacating` (its releaser died during the
 * delay). Both are safe to run twice and on several replicas at once: the scripts above make
 * exactly one caller announce each transition. A replica that finds itself retired (its
 * heartbeat was late) registers and holds what it holds again.
 */
export function createRedisTransitions(opts: RedisTransitionsOptions): Transitions {
  const { redis, heartbeat, logger, announce } = opts;
  const p = opts.keyPrefix;
  // This replica as a holder: its heartbeat instance, which changes when the heartbeat is renewed
  // (src/cluster/heartbeat.ts); the old holder is then retired by a sweep like a dead replica's.
  const self = () => `${heartbeat.replicaId}/${heartbeat.instance}`;
  const registry = `${p}-webhook-holders`;
  const vacating = `${p}-webhook-vacating`;
  const indexOf = (holder: string) => `${p}-webhook-holder:${holder}`;
  const keysOf = (subject: Subject): [string, string] => {
    const base = `${p}-webhook:{${subject.room}}${subject.user === undefined ? '' : `:user:${subject.user}`}`;
    return [`${base}:holders`, `${base}:state`];
  };
  const failureLog = throttle(10_000);
  const report = (err: Error) => {
    if (failureLog.due()) logger.warn({ err: err.message }, 'webhook room state write failed; rewritten when Redis returns');
  };
  const pending = new Set<Promise<unknown>>();
  /** Keeps `work` for `close` to wait on; its failure is reported, never thrown. */
  const track = (work: Promise<unknown>): Promise<unknown> => {
    const settled = work.catch(report).finally(() => pending.delete(settled));
    pending.add(settled);
    return settled;
  };
  const timers = new Map<string, NodeJS.Timeout>();
  let closed = false;

  // As presence: nothing is written before the first connection; the resync on `ready` does it.
  let connected = redis.status === 'ready';
  if (!connected) redis.once('ready', () => (connected = true));

  /**
   * Writes of one subject go one after the other: the next is sent once the previous one is
   * answered. Sent at once they could be reordered on the way (measured on a Redis Cluster: a
   * release sent 50 ms after a hold ran first, leaving a holder behind that never left).
   */
  const chains = new Map<string, Promise<unknown>>();
  const inOrder = (key: string, write: () => Promise<unknown>): Promise<unknown> => {
    // Tracked promises never reject, so each write runs whatever became of the one before.
    const next = track((chains.get(key) ?? Promise.resolve()).then(write));
    chains.set(key, next);
    void next.finally(() => chains.get(key) === next && chains.delete(key));
    return next;
  };

  const hold = (subject: Subject) => {
    if (!connected) return;
    const key = keyOf(subject);
    void inOrder(key, async () => {
      const holder = self();
      const [, won] = await Promise.all([redis.sadd(indexOf(holder), key), redis.eval(HOLD, 2, ...keysOf(subject), holder) as Promise<number>]);
      if (won === 1) announce('start', subject);
    });
  };

  const releaseAs = (holder: string, key: string) =>
    inOrder(key, async () => {
      const [deadline] = await Promise.all([redis.eval(RELEASE, 2, ...keysOf(subjectOf(key)), holder, opts.delayMs) as Promise<number>, redis.srem(indexOf(holder), key)]);
      if (deadline >= 0) schedule(key, deadline, opts.delayMs);
    });

  const schedule = (key: string, deadline: number, inMs: number) => {
    track(redis.zadd(vacating, deadline, key));
    clearTimeout(timers.get(key));
    const timer = setTimeout(() => {
      timers.delete(key);
      track(vacate(key, deadline));
    }, inMs);
    timer.unref();
    timers.set(key, timer);
  };

  const vacate = async (key: string, scheduled: number) => {
    if (closed) return;
    const subject = subjectOf(key);
    const [status, value] = (await redis.eval(VACATE, 2, ...keysOf(subject))) as [number, number];
    if (status === 2) {
      if (!timers.has(key)) schedule(key, scheduled, value);
      return;
    }
    if (status === 1) announce('end', subject);
    await redis.eval(UNSCHEDULE, 1, vacating, key, status === 1 ? value : scheduled);
  };

  let sweeping = false;
  const sweep = async () => {
    if (!connected || sweeping || closed) return;
    sweeping = true;
    try {
      // A replica whose heartbeat was late (an event loop stalled past PRESENCE_TTL_SECONDS) may
      // have been retired by another one meanwhile: it registers and holds what it holds again.
      if ((await redis.sadd(registry, self())) === 1) for (const subject of opts.held()) hold(subject);
      const others = (await redis.smembers(registry)).filter((h) => h !== self());
      const live = await heartbeat.liveInstances(others.map((h) => h.slice(0, h.lastIndexOf('/'))));
      for (const [i, holder] of others.entries()) {
        if (live[i] !== holder.slice(holder.lastIndexOf('/') + 1)) await retire(holder);
      }
      const due = await redis.zrangebyscore(vacating, '-inf', Date.now() - opts.sweepMs, 'WITHSCORES', 'LIMIT', 0, 100);
      for (let i = 0; i + 1 < due.length; i += 2) await vacate(due[i]!, Number(due[i + 1]));
    } catch (err) {
      report(err as Error);
    } finally {
      sweeping = false;
    }
  };

  const retire = async (holder: string) => {
    const keys = await redis.smembers(indexOf(holder));
    for (const key of keys) await releaseAs(holder, key);
    await redis.srem(registry, holder);
    logger.info({ holder, subjects: keys.length }, 'released the rooms of a replica whose heartbeat stopped');
  };

  const resync = async () => {
    const holder = self();
    await redis.sadd(registry, holder);
    const recorded = await redis.smembers(indexOf(holder));
    // From here on in one go: what is held now is queued before any later local change, which
    // would otherwise be overtaken (a release queued during an await, then the stale hold after it).
    const held = opts.held();
    const wanted = new Set(held.map(keyOf));
    for (const key of recorded) if (!wanted.has(key)) void releaseAs(holder, key);
    for (const subject of held) hold(subject);
  };
  // The heartbeat has been written (again) just before: on the first connection, after every
  // reconnect, and when this replica finds the others had counted it as gone.
  heartbeat.onRenewed(() => resync().catch(report));
  const sweeper = setInterval(() => void sweep(), opts.sweepMs);
  sweeper.unref();

  return {
    hold,
    release(subject) {
      if (connected) void releaseAs(self(), keyOf(subject));
    },
    async close() {
      clearInterval(sweeper);
      await Promise.all(pending);
      closed = true;
      // Ends this replica scheduled are in `-webhook-vacating`, for another replica's sweep to run;
      // this instance stays in the registry until a sweep finds its heartbeat gone and retires it
      // (releasing whatever a failed write left behind).
      for (const t of timers.values()) clearTimeout(t);
    },
  };
}
