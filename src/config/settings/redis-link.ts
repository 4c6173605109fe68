import { integer, setting } from '../parse.js';

/**
 * How herald notices that Redis is out of reach (a silent partition included), and what a replica
 * does about it. Listed inside CORE_SETTINGS, after the ways to name a Redis.
 */
export const REDIS_LINK_SETTINGS = [
  setting({
    env: 'REDIS_TIMEOUT_SECONDS',
    key: 'redisTimeoutSeconds',
    doc: 'Longest herald waits on Redis. Every Redis connection (subscribers included) is sent a PING every fifth of this; one that received nothing for the rest of it is dropped and re-dialled, so a dead link, even a silent partition with no reset, is noticed within this many seconds: `/readyz` turns 503 and `herald_redis_up` 0, with one warning in the log. No Redis command, connection attempt or `POST /v1/publish` waits longer (see Health and shutdown). Keep it above the slowest command your Redis runs.',
    defaultText: '5',
    parse: integer(1, 60, 5),
  }),
  setting({
    env: 'REDIS_OUTAGE_CLOSE_SECONDS',
    key: 'redisOutageCloseSeconds',
    doc: 'A replica that has been unable to reach Redis for this many seconds closes its clients, each with `herald:disconnect` `{code: "redis_unreachable"}` and a recovery offset that works on any replica, and refuses new handshakes until Redis is back: clients reconnect through the load balancer to a replica that can serve them, and recover there. `0`: never (a single replica, whose clients have nowhere else to go, or deployments that prefer waiting out Redis failovers longer than this).',
    defaultText: '10',
    parse: integer(0, 86_400, 10),
  }),
] as const;
