/**
 * `node --import tsx bench/scale/memory.ts`: what a bench:scale fan costs a replica in memory, on
 * one replica + Redis with COUNT fans (default 5,000): the all-scores and a match room (history
 * rooms unless told otherwise), its user room, a JWT and its own X-Forwarded-For address, as in
 * `npm run bench:scale`. For each variant, on fresh processes: the replica's RSS and V8 heap per
 * fan after they connected, HOLD seconds later (a comma list, default 5,30). SNAPSHOT=<dir> also writes a heap
 * snapshot before and after (HeapSnapshot files, compare them in Chrome DevTools' Memory tab).
 *
 * VARIANTS: `name:ENV=v,ENV=v;name:...` (herald settings, NODE_ARGS for node flags, and MAIN=<path>
 * to run another build's dist/main.js, so before and after run in one command; default: `history:`
 * and `no-history:HISTORY_ROOMS=`).
 */
import { mkdirSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { FanPool } from '../../loadtest/harness/fans/pool.js';
import { loopbackAddresses } from '../../loadtest/harness/workers.js';
import { cpuSeconds, rssBytes, startRedis, startReplica, type Replica } from './cluster.js';
import { JWT_SECRET, PUBLISH_KEY } from './scenario.js';
import { parseVariants } from '../stacks.js';

const COUNT = Number(process.env.COUNT ?? 5000);
/** When to read, in seconds after the last fan connected (comma list, default 5,30). */
const HOLDS = (process.env.HOLD ?? '5,30').split(',').map(Number);
const MATCHES = Number(process.env.MATCHES ?? 1000);
const snapshots = process.env.SNAPSHOT;
if (snapshots) mkdirSync(snapshots, { recursive: true });
const variants = parseVariants(process.env.VARIANTS ?? 'history:;no-history:HISTORY_ROOMS=');

/** The replica's V8 heap, used and committed, and the memory outside it that V8 knows of (Buffers), from its /metrics. */
async function heap(replica: Replica): Promise<Record<string, number>> {
  const text = await (await fetch(`${replica.url}/metrics`, { headers: { authorization: `Bearer ${PUBLISH_KEY}` } })).text();
  const read = (name: string) => Number(new RegExp(`^herald_nodejs_${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  // Major GCs (mark-compact) so far: how many, their total seconds, and how many took over 0.1 s (prom-client's buckets).
  const gc = (what: string) => Number(new RegExp(`^herald_nodejs_gc_duration_seconds_${what}\\{[^}]*kind="major"[^}]*\\} ([\\d.e+-]+)$`, 'm').exec(text)?.[1] ?? 0);
  const space = (name: string, which: 'used' | 'total') => Number(new RegExp(`^herald_nodejs_heap_space_size_${which}_bytes\\{space="${name}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    heap: read('heap_size_used_bytes'),
    committed: read('heap_size_total_bytes'),
    external: read('external_memory_bytes'),
    oldUsed: space('old', 'used'),
    oldCommitted: space('old', 'total'),
    largeCommitted: space('large_object', 'total'),
    newCommitted: space('new', 'total'),
    majorGcs: gc('count'),
    majorGcSeconds: gc('sum'),
    majorGcsUnder100ms: Number(/^herald_nodejs_gc_duration_seconds_bucket\{le="0\.1",kind="major"\} (\d+)$/m.exec(text)?.[1] ?? 0),
  };
}

async function snapshot(replica: Replica): Promise<void> {
  process.kill(replica.pid, 'SIGUSR2');
  await delay(500);
  await fetch(`${replica.url}/healthz`);
}

// ROUNDS: the variants in turn, that many times (default 1).
for (const v of Array.from({ length: Number(process.env.ROUNDS ?? 1) }, () => variants).flat()) {
  // NODE_ARGS in a variant: node flags for the replica, space-separated (they replace npm start's own of the same name).
  const { NODE_ARGS = '', MAIN, ...env } = v.env;
  const redis = await startRedis();
  const replica = await startReplica({
    redisUrl: redis.url,
    jwtSecret: JWT_SECRET,
    publishKey: PUBLISH_KEY,
    env: { CONNECT_RATE_PER_IP: '100000', CONNECT_BURST_PER_IP: '100000', ...env },
    nodeArgs: [...NODE_ARGS.split(' ').filter(Boolean), ...(snapshots ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshots}`] : [])],
    ...(MAIN ? { main: MAIN } : {}),
  });
  const pool = await FanPool.start(2);
  try {
    await delay(1000);
    if (snapshots) await snapshot(replica);
    const before: Record<string, number> = { rss: rssBytes(replica.pid), ...(await heap(replica)) };
    const cpuBefore = cpuSeconds(replica.pid);
    await pool.open(COUNT, { urls: [replica.url], matches: MATCHES, jwtSecret: JWT_SECRET, localAddresses: loopbackAddresses(16), concurrency: 64, forwardedFor: true });
    const deadline = Date.now() + 120_000;
    let status = await pool.status();
    while (status.live < COUNT && Date.now() < deadline) {
      await delay(500);
      status = await pool.status();
    }
    const connected = Date.now();
    for (const hold of HOLDS) {
      await delay(Math.max(0, connected + hold * 1000 - Date.now()));
      const after: Record<string, number> = { rss: rssBytes(replica.pid), ...(await heap(replica)) };
      const per = (k: string) => ((after[k]! - before[k]!) / status.live).toFixed(0);
      console.log(
        `${v.name.padEnd(12)} ${status.live} of ${COUNT} fans, ${String(hold).padStart(3)} s after: RSS ${(before.rss! / 2 ** 20).toFixed(0)} → ${(after.rss! / 2 ** 20).toFixed(0)} MiB, ${per('rss')} B per fan (${(after.rss! / status.live).toFixed(0)} B with the replica's own); V8 heap used ${per('heap')} B, committed ${per('committed')} B; old space used ${per('oldUsed')} B, committed ${per('oldCommitted')} B; large objects ${per('largeCommitted')} B; replica CPU since the first connect ${(cpuSeconds(replica.pid) - cpuBefore).toFixed(2)} s; major GCs ${after.majorGcs! - before.majorGcs!} taking ${((after.majorGcSeconds! - before.majorGcSeconds!) * 1000).toFixed(0)} ms, ${after.majorGcs! - before.majorGcs! - (after.majorGcsUnder100ms! - before.majorGcsUnder100ms!)} of them over 100 ms`,
      );
    }
    if (snapshots) await snapshot(replica);
  } finally {
    await pool.stop();
    replica.signal('SIGKILL');
    await replica.exited;
    await redis.stop();
  }
}
