import { Cluster, type Redis, type RedisOptions } from 'ioredis';

/**
 * How long herald gives Redis to answer before it treats a connection as dead (REDIS_TIMEOUT_SECONDS).
 *
 * A silent partition (packets dropped, no RST or FIN) leaves a TCP connection open and quiet for
 * hours: the kernel's keep-alive starts after 7,200 s idle, and nothing else notices. So every
 * connection herald holds is checked actively, all three ways ioredis offers:
 * - a PING every `pingMs` on each connection that has none waiting (a subscriber too: PING is
 *   valid in RESP2 subscriber mode), so a connection is never idle for long;
 * - `socketTimeout`: a connection that was sent something and received nothing for
 *   `socketTimeoutMs` is destroyed, which rejects what waits on it and starts ioredis's reconnect;
 *   so a dead link is dropped at most `pingMs` + `socketTimeoutMs` = `timeoutMs` after it died;
 * - `commandTimeout`: no command waits longer than `timeoutMs`, whatever the connection does;
 * - `connectTimeout`: a re-dial into a blackhole (SYN dropped) gives up after `timeoutMs`, and one
 *   that connects but is never answered (a middlebox holding it) hits the socket timeout.
 * TCP keep-alive is left alone: a connection pinged every `pingMs` is never idle long enough for it.
 * The price: a Redis busy for longer than `socketTimeoutMs` in one command (a slow script) has
 * herald's connections dropped and re-dialled; keep REDIS_TIMEOUT_SECONDS above your slowest command.
 */
export interface LinkTiming {
  readonly timeoutMs: number;
  readonly pingMs: number;
  readonly socketTimeoutMs: number;
}

/** A PING at least every fifth of the timeout, the rest of it for the answer. */
export function linkTiming(timeoutMs: number): LinkTiming {
  const pingMs = Math.max(100, Math.round(timeoutMs / 5));
  return { timeoutMs, pingMs, socketTimeoutMs: timeoutMs - pingMs };
}

/** The ioredis options that bound every wait on a connection (see `LinkTiming`). */
export function linkOptions(t: LinkTiming): RedisOptions {
  return { connectTimeout: t.timeoutMs, socketTimeout: t.socketTimeoutMs, commandTimeout: t.timeoutMs };
}

/** Anything ioredis connects: a standalone, Sentinel-found or cluster client. */
type Client = Redis | Cluster;

/**
 * The connections behind `client`: itself; for a Redis Cluster, its node connections (commands,
 * slot refreshes) and its sharded subscribers, one per shard. ioredis creates both with the
 * cluster's `redisOptions` (so they have the timeouts above), and exposes the node connections
 * (`nodes()`) but not the sharded subscribers: those are read from its `shardedSubscribers` group,
 * checked against ioredis 5.11. Its classic cluster subscriber (`subscribe` on a cluster) is not
 * covered; herald never uses it (a cluster runs in sharded mode).
 */
export function connectionsOf(client: Client): Redis[] {
  if (!(client instanceof Cluster)) return [client];
  const group = (client as unknown as { shardedSubscribers?: { shardedSubscribers?: Map<string, { instance: Redis | null }> } }).shardedSubscribers;
  const subscribers = [...(group?.shardedSubscribers?.values() ?? [])].flatMap((s) => (s.instance ? [s.instance] : []));
  return [...client.nodes('all'), ...subscribers];
}

/**
 * PINGs every ready connection of `client` every `pingMs`, one PING at a time per connection.
 * A PING that fails is reported to `onMiss`; the connection itself is dropped by its socket timeout.
 */
export function pingLinks(client: Client, t: LinkTiming, onMiss: (err: Error) => void): { close(): void } {
  const waiting = new WeakSet<Redis>();
  const timer = setInterval(() => {
    for (const connection of connectionsOf(client)) {
      if (connection.status !== 'ready' || waiting.has(connection)) continue;
      waiting.add(connection);
      connection
        .ping()
        .catch(onMiss)
        .finally(() => waiting.delete(connection));
    }
  }, t.pingMs);
  timer.unref();
  return { close: () => clearInterval(timer) };
}
