/**
 * The jitter scenario (loadtest/harness/jitter.ts) against herald and the stock Socket.IO cluster,
 * side by side: `npm run bench` runs it, and `node --import tsx bench/jitter.ts [herald|stock ...]`
 * runs it alone; with `--record` it also stores the rows in bench/results.json as a separate run
 * (with its time, commit and whether herald's src/ has built-in recovery), which
 * `node --import tsx bench/run.ts --report` then shows beside the full run's. JITTER_CLIENTS, JITTER_RATE, JITTER_SECONDS, JITTER_DROP_EVERY_MS override the
 * defaults below.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jitter, type JitterOptions } from '../loadtest/harness/jitter.js';
import { heraldStack, pinToClientCpu, ROOT, stockStack, type Stack } from './stacks.js';

/** 200 clients, 20 messages/s for 20 s, every connection reset every ~2 s. */
export const JITTER_DEFAULTS = {
  clients: Number(process.env.JITTER_CLIENTS ?? 200),
  rate: Number(process.env.JITTER_RATE ?? 20),
  seconds: Number(process.env.JITTER_SECONDS ?? 20),
  dropEveryMs: Number(process.env.JITTER_DROP_EVERY_MS ?? 2000),
};

export const JITTER_STACKS: Record<string, { name: string; make: () => Promise<Stack>; join: JitterOptions['join'] }> = {
  // HISTORY_ROOMS: the room keeps its messages in a Redis stream, which is what herald replays from
  // (CONNECTION_RECOVERY_SECONDS, default 120, once herald has built-in recovery).
  herald: { name: 'herald (2 replicas + Redis, uWS), history room', make: () => heraldStack('herald-jitter', 'uws', 2, { HISTORY_ROOMS: 'jitter:*' }), join: 'subscribe' },
  stock: { name: 'stock Socket.IO + redis-adapter (2 processes), connectionStateRecovery on', make: () => stockStack({ CONNECTION_STATE_RECOVERY: '1' }), join: 'auth' },
};

export async function jitterComparison(names = Object.keys(JITTER_STACKS), o = JITTER_DEFAULTS) {
  const rows = [];
  for (const n of names) {
    const s = JITTER_STACKS[n]!;
    const stack = await s.make();
    try {
      rows.push({ stack: s.name, ...(await jitter(stack.urls, { urls: stack.urls }, { ...o, room: `jitter:${n}-${Date.now()}`, join: s.join })) });
    } finally {
      await stack.stop();
    }
  }
  return rows;
}

export type JitterRow = Awaited<ReturnType<typeof jitterComparison>>[number];

/** A jitter run made on its own (`--record`), kept beside the full run's in bench/results.json. */
export interface SeparateJitterRun {
  generatedAt: string;
  /** The last commit that changed herald's src/ in the tree measured. */
  commit: string;
  heraldRecovery: boolean;
  rows: JitterRow[];
}

/** The last commit that changed herald's src/ (bench/ commits rebased later do not move it). */
export function srcCommit(): string {
  return execFileSync('git', ['-C', ROOT, 'log', '-1', '--format=%h', '--', 'src']).toString().trim();
}

/** Whether herald's src/ mentions `text` (grep exits 1 when it does not). */
export function sourceMentions(text: string): boolean {
  try {
    execFileSync('grep', ['-rqF', text, join(ROOT, 'src')]);
    return true;
  } catch {
    return false;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  pinToClientCpu();
  const record = process.argv.includes('--record');
  const names = process.argv.slice(2).filter((a) => a !== '--record');
  const rows = await jitterComparison(names.length ? names : undefined);
  for (const row of rows) console.log(JSON.stringify(row));
  if (record) {
    const file = join(ROOT, 'bench/results.json');
    const run = JSON.parse(readFileSync(file, 'utf8')) as { jitterSeparate?: SeparateJitterRun };
    run.jitterSeparate = { generatedAt: new Date().toISOString(), commit: srcCommit(), heraldRecovery: sourceMentions('CONNECTION_RECOVERY_SECONDS'), rows };
    writeFileSync(file, JSON.stringify(run, null, 2));
    console.log('# jitter: recorded in bench/results.json; `node --import tsx bench/run.ts --report` shows it');
  }
}
