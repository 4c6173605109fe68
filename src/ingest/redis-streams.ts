import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { LinkTiming } from '../cluster/link.js';
import { commonOptions, watchClient } from '../cluster/redis.js';
import { toHeraldError } from '../errors.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Publisher } from '../publish/service.js';
import { parseEntry, type RawEntry } from './entry.js';

/**
 * How long one XREADGROUP waits for new entries before the loop looks around (claims, shutdown);
 * at most half the socket timeout, which would otherwise take a quiet stream for a dead link.
 */
const BLOCK_MS = 2000;

export interface StreamIngestOptions {
  redisUrl: string;
  /** REDIS_TIMEOUT_SECONDS (src/cluster/link.ts); the connection is named `herald:<consumer>:ingest`. */
  timing: LinkTiming;
  streams: readonly string[];
  group: string;
  /** This replica's consumer name: its REPLICA_ID, so a restart finds its own pending entries. */
  consumer: string;
  batch: number;
  claimIdleMs: number;
  maxBytes: number;
  publisher: Publisher;
  metrics: Metrics;
  logger: Logger;
}

/** Fields are null for a pending entry that was deleted from the stream (XDEL, trimming). */
type Entry = [id: string, fields: string[] | null];

/**
 * Redis Streams ingest, at least once from the stream to the rooms:
 * - all replicas read `streams` as one consumer group; an entry is broadcast through the publisher
 *   and acknowledged after that (a crash in between leaves it pending);
 * - at start a replica first re-reads its own pending entries; periodically it claims entries other
 *   consumers left pending longer than `claimIdleMs` (XAUTOCLAIM), i.e. those of crashed replicas;
 * - the entry id is the publish's dedupe key, so in history rooms a re-delivered entry is not shown
 *   twice; in other rooms it can be (documented);
 * - bad entries are acknowledged and counted as rejected, with the reason logged; an entry that
 *   could not be published (history unreachable) stays pending and is retried.
 */
export function startStreamIngest(opts: StreamIngestOptions): { close(): Promise<void> } {
  const { logger, metrics } = opts;
  // Its own connection: XREADGROUP BLOCK holds it. Commands wait out Redis outages.
  const redis = new Redis(opts.redisUrl, { ...commonOptions(opts.timing), maxRetriesPerRequest: null, connectionName: `herald:${opts.consumer}:ingest` });
  watchClient(redis, 'ingest', logger, { metrics, setting: 'REDIS_URL' });
  const blockMs = Math.min(BLOCK_MS, Math.floor(opts.timing.socketTimeoutMs / 2));
  const errorLog = throttle(10_000);
  let closing = false;
  let ownPending = true;
  let lastClaim = 0;

  /** Publishes and acknowledges `entries` in order; false when it stopped early to retry later. */
  const process = async (stream: string, entries: Entry[]): Promise<boolean> => {
    const ack: string[] = [];
    let complete = true;
    for (const [id, fields] of entries) {
      if (!Array.isArray(fields)) {
        metrics.ingested('redis-stream', 'rejected');
        logger.warn({ stream, id }, 'acknowledged a pending ingest entry that no longer exists');
        ack.push(id);
        continue;
      }
      const raw: RawEntry = {};
      for (let i = 0; i + 1 < fields.length; i += 2) (raw as Record<string, string>)[fields[i]!] = fields[i + 1]!;
      try {
        const request = parseEntry(raw, opts.maxBytes);
        await opts.publisher.publish(request, 'redis-stream', `${stream}/${id}`);
        metrics.ingested('redis-stream', 'delivered', (Date.now() - Number(id.split('-')[0])) / 1000);
        ack.push(id);
      } catch (err) {
        const herr = toHeraldError(err);
        if (herr.code === 'unavailable' || herr.code === 'publish_timeout' || herr.code === 'internal') {
          // Not the entry's fault: leave it pending and retry our own pending entries shortly.
          metrics.ingested('redis-stream', 'retried');
          ownPending = true;
          complete = false;
          break;
        }
        metrics.ingested('redis-stream', 'rejected');
        logger.warn({ stream, id, code: herr.code, reason: herr.message }, 'rejected an ingest entry');
        ack.push(id);
      }
    }
    if (ack.length > 0) await redis.xack(stream, opts.group, ...ack);
    return complete;
  };

  const ensureGroups = async () => {
    for (const stream of opts.streams) {
      await redis.xgroup('CREATE', stream, opts.group, '$', 'MKSTREAM').catch((err: Error) => {
        if (!/BUSYGROUP/.test(err.message)) throw err;
      });
    }
  };

  const claim = async () => {
    for (const stream of opts.streams) {
      let cursor = '0-0';
      for (let round = 0; round < 100; round++) {
        const [next, entries] = (await redis.xautoclaim(stream, opts.group, opts.consumer, opts.claimIdleMs, cursor, 'COUNT', opts.batch)) as [string, Entry[]];
        const live = entries.filter((e): e is Entry => Array.isArray(e));
        if (live.length > 0) {
          logger.info({ stream, count: live.length }, 'claimed ingest entries left pending by another replica');
          await process(stream, live);
        }
        if (next === '0-0') break;
        cursor = next;
      }
    }
  };

  const loop = async () => {
    while (!closing) {
      try {
        await ensureGroups();
        break;
      } catch (err) {
        if (errorLog.due()) logger.warn({ err: (err as Error).message }, 'cannot create the ingest consumer groups yet');
        await delay(1000);
      }
    }
    while (!closing) {
      try {
        if (Date.now() - lastClaim >= opts.claimIdleMs / 2) {
          lastClaim = Date.now();
          await claim();
        }
        // "0" re-reads this consumer's own pending entries; ">" reads new ones.
        const ids = opts.streams.map(() => (ownPending ? '0' : '>'));
        const reply = (await redis.call(
          'XREADGROUP', 'GROUP', opts.group, opts.consumer, 'COUNT', opts.batch, ...(ownPending ? [] : ['BLOCK', blockMs]), 'STREAMS', ...opts.streams, ...ids,
        )) as [string, Entry[]][] | null;
        const wasOwn = ownPending;
        ownPending = false;
        let any = false;
        let complete = true;
        for (const [stream, entries] of reply ?? []) {
          if (entries.length > 0) any = true;
          if (!(await process(stream, entries))) complete = false;
        }
        // Keep draining our own pending list until it is empty; back off while publishing fails.
        if (wasOwn && any) ownPending = true;
        if (!complete) await delay(1000);
      } catch (err) {
        if (closing) break;
        if (errorLog.due()) logger.warn({ err: (err as Error).message }, 'stream ingest error; retrying');
        await delay(500);
      }
    }
  };
  const running = loop();

  return {
    async close() {
      closing = true;
      redis.disconnect();
      await running;
    },
  };
}

