import type { Heartbeat } from '../cluster/heartbeat.js';
import type { RedisClient } from '../cluster/redis.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { Member, PresenceBackend } from './types.js';
import { summarize } from './types.js';

/** Room hashes are a safety net for rooms nobody reads: they expire a day after their last write. */
const ROOM_KEY_TTL_SECONDS = 24 * 3600;

export interface RedisPresenceOptions {
  redis: RedisClient;
  keyPrefix: string;
  /** This replica's liveness; the owner closes it after `close`. */
  heartbeat: Heartbeat;
  logger: Logger;
}

/**
 * Layout: a hash per room, `<prefix>-presence:{<room>}`, field `<replica>/<instance>/<socket>`,
 * value the user id ('' for anonymous). A field counts only while its replica's heartbeat
 * (cluster/heartbeat.ts) names its instance: a crashed replica's key expires, and a restarted one
 * overwrites it at once. Dead fields are deleted by whoever reads them.
 *
 * The owner calls `resync` whenever the heartbeat is renewed (app.ts does): the first time Redis
 * is ready (writes made before the first connection are skipped, not failed), after every
 * reconnect, and when this replica finds it was counted as gone. A renewal changes the instance,
 * so members written before it, and those whose removal was lost in an outage, stop counting.
 */
export function createRedisPresence(opts: RedisPresenceOptions): PresenceBackend {
  const { redis, logger, heartbeat } = opts;
  const roomKey = (room: string) => `${opts.keyPrefix}-presence:{${room}}`;
  // The heartbeat's instance changes when it is renewed (src/cluster/heartbeat.ts): read it per write.
  const self = () => `${heartbeat.replicaId}/${heartbeat.instance}/`;
  const failureLog = throttle(10_000);
  const report = (err: Error) => {
    if (failureLog.due()) logger.warn({ err: err.message }, 'presence write failed; resynced when Redis returns');
  };

  // herald's publisher has no offline queue, so a write before the first connection fails at once:
  // every replica used to log a failure at start. Until the client has been ready once, writes
  // are skipped instead; the resync the owner runs on `ready` writes the heartbeat and every
  // member then. Later outages are reported, as they lose writes the owner must resync.
  let connected = redis.status === 'ready';
  if (!connected) redis.once('ready', () => (connected = true));
  const write = async (op: () => Promise<unknown>): Promise<void> => {
    if (!connected) return;
    try {
      await op();
    } catch (err) {
      report(err as Error);
    }
  };

  return {
    async add(room, member) {
      await write(() => redis.multi().hset(roomKey(room), self() + member.client, member.user ?? '').expire(roomKey(room), ROOM_KEY_TTL_SECONDS).exec());
    },
    async remove(room, client) {
      await write(() => redis.hdel(roomKey(room), self() + client));
    },
    async get(room) {
      const fields = await redis.hgetall(roomKey(room));
      const byReplica = new Map<string, string | null>();
      for (const field of Object.keys(fields)) byReplica.set(field.split('/')[0]!, null);
      const replicas = [...byReplica.keys()];
      const live = await heartbeat.liveInstances(replicas);
      replicas.forEach((r, i) => byReplica.set(r, live[i] ?? null));
      const members: Member[] = [];
      const dead: string[] = [];
      for (const [field, user] of Object.entries(fields)) {
        const [replica, inst, client] = field.split('/');
        if (client && byReplica.get(replica!) === inst) members.push({ client, user: user === '' ? undefined : user });
        else dead.push(field);
      }
      if (dead.length > 0) void redis.hdel(roomKey(room), ...dead).catch(report);
      return summarize(members);
    },
    async resync(members) {
      await heartbeat.beat();
      // One MULTI per room: each touches a single key, so it also works on a Redis Cluster.
      const byRoom = new Map<string, Record<string, string>>();
      for (const [room, m] of members) {
        const fields = byRoom.get(room) ?? {};
        fields[self() + m.client] = m.user ?? '';
        byRoom.set(room, fields);
      }
      await Promise.all(
        [...byRoom].map(([room, fields]) => write(() => redis.multi().hset(roomKey(room), fields).expire(roomKey(room), ROOM_KEY_TTL_SECONDS).exec())),
      );
    },
    // A clean stop retires this instance's members at once when the owner closes the heartbeat.
    async close() {},
  };
}
