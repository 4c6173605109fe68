import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../observability/logger.js';

/**
 * A master that Sentinels monitor as `name`. `password`: the master's and its replicas'
 * (`requirepass`); `sentinelPassword`: the Sentinels' own.
 */
export interface SentinelTarget {
  readonly sentinels: readonly { host: string; port: number }[];
  readonly name: string;
  readonly password?: string;
  readonly sentinelPassword?: string;
}

/**
 * A Sentinel command that has not answered by then counts as a failed Sentinel, and the next one
 * is asked: one that accepts connections but never answers would otherwise hold up every reconnect.
 */
const SENTINEL_COMMAND_TIMEOUT_MS = 2000;

/** The channel on which every Sentinel announces a new master: `<name> <old ip> <old port> <new ip> <new port>`. */
const SWITCH_MASTER = '+switch-master';

/**
 * A client of the master the Sentinels monitor as `target.name`. On every connect and reconnect
 * ioredis asks the Sentinels, one after the other, where that master is and checks that the
 * server it reaches there says it is one; so after a failover the reconnect lands on the promoted
 * replica, and a subscriber resubscribes there by itself. A master that dies closes the
 * connections, which starts that reconnect; one that stays up needs `followFailovers`.
 */
export function createSentinelClient(target: SentinelTarget, options: RedisOptions): Redis {
  return new Redis({
    ...options,
    sentinels: target.sentinels.map(({ host, port }) => ({ host, port })),
    name: target.name,
    password: target.password,
    sentinelPassword: target.sentinelPassword,
    // While no Sentinel answers: the same back-off as a lost connection (ioredis's default retries every second).
    sentinelRetryStrategy: options.retryStrategy ?? undefined,
    sentinelCommandTimeout: SENTINEL_COMMAND_TIMEOUT_MS,
    // A write refused by a server that has become a replica (a connection that reached the old
    // master as the switch was announced, see `followFailovers`): reconnect, which asks the Sentinels again.
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
  });
}

/**
 * Moves `clients` to the new master as soon as a Sentinel announces it. A master that stays up
 * while the Sentinels promote a replica (`SENTINEL FAILOVER`, a partition that heals) keeps its
 * connections: measured here, the old master still said `role:master` and took writes 5 s after
 * the switch, writes that its demotion then throws away. Listening to `+switch-master` on every
 * Sentinel, both connections were on the new master 0.1 s after it.
 *
 * Only a client that is connected is moved. One that is connecting asks the Sentinels anyway, and
 * ending its connection attempt would stop it for good: ioredis's own `failoverDetector` does
 * that, and after a `kill -9` of the master, when clients reconnect all the time, it left a
 * gateway with a client that never reconnected in 2 of 12 runs of the failover test.
 */
export function followFailovers(
  target: SentinelTarget,
  clients: readonly Redis[],
  options: RedisOptions,
  watch: (client: Redis, name: string) => void,
  logger: Logger,
): { readonly watchers: readonly Redis[]; close(): void } {
  const onSwitch = (channel: string, message: string) => {
    const [name, , , ip, port] = message.split(' ');
    if (channel !== SWITCH_MASTER || name !== target.name || ip === undefined || port === undefined) return;
    for (const client of clients) {
      if (client.status !== 'ready' && client.status !== 'connect') continue;
      const from = serverOf(client);
      if (from === `${ip}:${port}`) continue;
      logger.info({ from, to: `${ip}:${port}` }, 'Sentinel switched the master; reconnecting');
      client.disconnect(true);
    }
  };
  const watchers = target.sentinels.map(({ host, port }) => {
    const watcher = new Redis({ ...options, host, port, password: target.sentinelPassword, maxRetriesPerRequest: null });
    watch(watcher, `sentinel ${host}:${port}`);
    // ioredis subscribes again after each reconnect, and sends one that timed out while the
    // Sentinel was unreachable once it connects; meanwhile this Sentinel's announcements are missed
    // (the others' still arrive, and a client that reconnects asks the Sentinels anyway).
    watcher.subscribe(SWITCH_MASTER).catch((err: Error) => logger.warn({ sentinel: `${host}:${port}`, err: err.message }, 'could not subscribe to +switch-master on a Sentinel; ioredis sends it again on connect'));
    watcher.on('message', onSwitch);
    return watcher;
  });
  return {
    watchers,
    close() {
      for (const w of watchers) w.disconnect();
    },
  };
}

/** `ip:port` of the server a client is connected to, IPv4 as Sentinel writes it (no `::ffff:`). */
export function serverOf(client: Redis): string | undefined {
  const { remoteAddress, remotePort } = client.stream ?? {};
  return remoteAddress ? `${remoteAddress.replace(/^::ffff:/, '')}:${remotePort}` : undefined;
}
