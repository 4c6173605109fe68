import { Redis, type Pipeline } from 'ioredis';
import type { RedisClient } from './redis.js';

/** A read a reconnecting crowd makes once per connection: a session lookup, a revocation, a catch-up, whether a replica still lives. */
type Read =
  | { command: 'get'; args: [key: string] }
  | { command: 'xrange'; args: [key: string, start: string, end: string, count: 'COUNT', n: number] }
  | { command: 'pubsub'; args: ['NUMSUB', channel: string] };
type Waiting = Read & { resolve(value: unknown): void; reject(err: Error): void };

/**
 * The reads of one event-loop turn, in one write: one explicit pipeline per turn (`setImmediate`,
 * after every I/O callback of the turn), for the reads a reconnecting crowd makes per connection
 * (a token's revocation, the session lookup, each history catch-up). Each was a write system call
 * of its own: 15 % of a surviving replica's CPU in a kill -9 storm (bench/scale/reconnect.ts).
 *
 * Not ioredis's auto-pipelining, which herald tried and reverted: that sends one batch at a time,
 * so a batch left unanswered by a dropped link holds every later command, publishes included,
 * until its timeout. Each pipeline here is independent of the others and of every other command,
 * fails as its commands would alone (no offline queue: at once while Redis is away; a command
 * timeout each), and carries reads only: a read that waits for the turn's end sees Redis as it is
 * then, later than when it was asked, which none of these callers can tell from a slower answer.
 * What one turn holds is what its connections asked for, each of them admitted first
 * (MAX_CONNECTIONS, the per-IP limits).
 *
 * On a Redis Cluster a pipeline must stay within one node's slots, so there each read goes alone.
 */
class ReadBatch {
  private waiting: Waiting[] = [];

  constructor(private readonly redis: Redis) {}

  read(read: Read): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.waiting.push({ ...read, resolve, reject }) === 1) setImmediate(this.flush);
    });
  }

  private readonly flush = (): void => {
    const batch = this.waiting;
    this.waiting = [];
    let sent: ReturnType<Pipeline['exec']>;
    try {
      const pipeline = this.redis.pipeline();
      for (const r of batch) (pipeline[r.command] as (...args: unknown[]) => unknown).apply(pipeline, r.args);
      sent = pipeline.exec();
    } catch (err) {
      // Not seen from ioredis (it rejects rather than throws), but a throw here would leave the
      // whole batch waiting for ever: each read fails as it would alone.
      for (const r of batch) r.reject(err as Error);
      return;
    }
    sent.then(
      (results) => {
        batch.forEach((r, i) => {
          const [err, value] = results?.[i] ?? [new Error('no reply in the pipeline'), undefined];
          if (err) r.reject(err);
          else r.resolve(value);
        });
      },
      (err: Error) => {
        for (const r of batch) r.reject(err);
      },
    );
  };
}

const batches = new WeakMap<Redis, ReadBatch>();

/** `client`'s reads, batched per turn (`ReadBatch`); a cluster's go one by one. */
export function batchedReads(client: RedisClient): {
  get(key: string): Promise<string | null>;
  xrange(key: string, start: string, end: string, count: 'COUNT', n: number): Promise<[id: string, fields: string[]][]>;
  /** Subscribers of a classic pub/sub channel (`PUBSUB NUMSUB`); on a cluster, those of the node asked only. */
  numsub(channel: string): Promise<number>;
} {
  const subscribers = (reply: unknown) => Number((reply as [string, number | string] | undefined)?.[1] ?? 0);
  if (!(client instanceof Redis)) {
    return {
      get: (key) => client.get(key),
      xrange: (key, start, end, count, n) => client.xrange(key, start, end, count, n),
      numsub: async (channel) => subscribers(await client.pubsub('NUMSUB', channel)),
    };
  }
  let batch = batches.get(client);
  if (!batch) batches.set(client, (batch = new ReadBatch(client)));
  const b = batch;
  return {
    get: (key) => b.read({ command: 'get', args: [key] }) as Promise<string | null>,
    xrange: (key, start, end, count, n) => b.read({ command: 'xrange', args: [key, start, end, count, n] }) as Promise<[string, string[]][]>,
    numsub: async (channel) => subscribers(await b.read({ command: 'pubsub', args: ['NUMSUB', channel] })),
  };
}
