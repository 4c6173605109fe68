import { parseSentinels } from '../addresses.js';
import { list, setting } from '../parse.js';
import type { Env } from '../types.js';

const hasSentinels = (env: Env) => list(env.REDIS_SENTINELS).length > 0;

/** A setting read only beside REDIS_SENTINELS; elsewhere it is a mistake, said with `hint`. */
function withSentinels(hint: string) {
  return (raw: string | undefined, env: Env): string | undefined => {
    if (raw === undefined || raw === '') return undefined;
    if (!hasSentinels(env)) throw new Error(`is read only with REDIS_SENTINELS${hint}`);
    return raw;
  };
}

/**
 * Redis Sentinel: where the Sentinels are and what they call the master. Listed inside
 * CORE_SETTINGS, after the other ways to name a Redis.
 */
export const SENTINEL_SETTINGS = [
  setting({
    env: 'REDIS_SENTINELS',
    key: 'redisSentinels',
    doc: 'Redis Sentinel, for a self-hosted master with replicas that fails over: comma-separated `host:port` of the Sentinels (26379 where the port is left out), e.g. `10.0.0.5:26379,10.0.0.6:26379,10.0.0.7:26379`. herald asks them for the master of `REDIS_SENTINEL_NAME` whenever it connects, so after a failover it reconnects to the promoted replica without a restart. Set instead of `REDIS_URL` and `REDIS_CLUSTER_NODES`.',
    defaultText: '(unset)',
    parse: (raw, env) => {
      const entries = list(raw);
      if (entries.length > 0 && env.REDIS_URL) throw new Error('and REDIS_URL are exclusive: set one (the Sentinels tell herald where the master is)');
      if (entries.length > 0 && env.REDIS_CLUSTER_NODES) {
        throw new Error('and REDIS_CLUSTER_NODES are exclusive: a Redis Cluster fails over by itself, without Sentinel');
      }
      return Object.freeze(parseSentinels(entries).map((s) => Object.freeze(s)));
    },
  }),
  setting({
    env: 'REDIS_SENTINEL_NAME',
    key: 'redisSentinelName',
    doc: 'With `REDIS_SENTINELS`, required: the master name the Sentinels monitor (`sentinel monitor <name> …` in their configuration).',
    defaultText: '(unset)',
    parse: (raw, env) => {
      if (raw === undefined || raw === '') {
        if (hasSentinels(env)) throw new Error('must be set with REDIS_SENTINELS: the master name the Sentinels monitor (sentinel monitor <name> ...)');
        return undefined;
      }
      if (!hasSentinels(env)) throw new Error('is read only with REDIS_SENTINELS, which is not set');
      if (!/^[\x21-\x7e]{1,128}$/.test(raw)) throw new Error('must be 1-128 printable characters without spaces, as in sentinel monitor <name>');
      return raw;
    },
  }),
  setting({
    env: 'REDIS_PASSWORD',
    key: 'redisPassword',
    doc: 'With `REDIS_SENTINELS`: the password of the master and its replicas (their `requirepass`). With `REDIS_URL` or `REDIS_CLUSTER_NODES` it goes in the URL instead.',
    defaultText: '(unset)',
    parse: withSentinels(': with REDIS_URL or REDIS_CLUSTER_NODES, put the password in the URL (redis://:password@host:port)'),
  }),
  setting({
    env: 'REDIS_SENTINEL_PASSWORD',
    key: 'redisSentinelPassword',
    doc: 'With `REDIS_SENTINELS`: the password the Sentinels themselves ask for (their own `requirepass`), if they do. Often the same as `REDIS_PASSWORD`; leave it unset for Sentinels without one.',
    defaultText: '(unset)',
    parse: withSentinels(''),
  }),
] as const;
