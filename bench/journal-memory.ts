/**
 * `node --import tsx bench/journal-memory.ts`: what connection recovery's journal costs in heap.
 *
 * For each case (message size × rooms with or without a member × recovery on or off) it starts a
 * private redis-server and one herald replica (`dist/main.js`, or HERALD_MAIN to measure another
 * build) with `--expose-gc` and test/fixtures/heap-probe.cjs, publishes N messages (default 5000)
 * through the HTTP API spread over M history rooms (default 50), and reads the replica's heap plus
 * its array buffers (where the journal's typed arrays live) after a full GC, before and after. With members, one client subscribed to every room receives
 * every message before the heap is read. Prints a markdown table.
 *
 * N=…, M=… and SIZES=small,60k change the run; CASES=on,off picks recovery settings. `npm run bench`
 * runs it with the defaults as one of its steps; alone, `--record` also stores the rows in
 * bench/results.json (shown by `node --import tsx bench/run.ts --report` as a separate run).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { io as connect } from 'socket.io-client';
import { startRedis } from '../test/helpers/redis.js';
import { srcCommit } from './jitter.js';
import { ROOT } from './stacks.js';

const MAIN = process.env.HERALD_MAIN ?? fileURLToPath(new URL('../dist/main.js', import.meta.url));
const PROBE = fileURLToPath(new URL('../test/fixtures/heap-probe.cjs', import.meta.url));
const KEY = 'journal-memory-bench-key-0123456789';
const SIZES: Record<string, number> = { small: 100, '60k': 60 * 1024 };
const CONCURRENCY = 8;

export interface JournalOptions {
  /** Publishes per case. @default 5000 */
  publishes: number;
  /** History rooms they are spread over. @default 50 */
  rooms: number;
  /** Message sizes: `small` (100 B) and `60k`. */
  sizes: string[];
  /** Recovery settings: `off` (CONNECTION_RECOVERY_SECONDS=0) and `on` (120). */
  recovery: string[];
}

export const JOURNAL_DEFAULTS: JournalOptions = {
  publishes: Number(process.env.N ?? 5000),
  rooms: Number(process.env.M ?? 50),
  sizes: (process.env.SIZES ?? 'small,60k').split(','),
  recovery: (process.env.CASES ?? 'off,on').split(','),
};

export interface JournalRow {
  size: string;
  messageBytes: number;
  rooms: number;
  members: boolean;
  recovery: string;
  publishes: number;
  beforeBytes: number;
  afterBytes: number;
  bytesPerPublish: number;
  seconds: number;
}

/** A run of this step made on its own (`--record`), kept in bench/results.json. */
export interface SeparateJournalRun {
  generatedAt: string;
  /** The last commit that changed herald's src/ in the tree measured. */
  commit: string;
  rows: JournalRow[];
}

/** Replicas still running: whatever happens to this script, they go with it. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

interface Replica {
  url: string;
  child: ChildProcess;
  lines: Record<string, unknown>[];
}

async function startReplica(env: Record<string, string>): Promise<Replica> {
  const child = spawn(process.execPath, ['--expose-gc', '--require', PROBE, MAIN], {
    env: { PATH: process.env.PATH, PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    try {
      lines.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      // not a log line
    }
  });
  children.add(child);
  try {
    const port = await until('listening', () => lines.find((l) => l.msg === 'listening')?.port as number | undefined, 20_000);
    return { url: `http://127.0.0.1:${port}`, child, lines };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

async function until<T>(what: string, check: () => T | undefined, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function heap(r: Replica): Promise<number> {
  const seen = r.lines.length;
  r.child.kill('SIGUSR2');
  const line = await until('heap probe', () => r.lines.slice(seen).find((l) => l.msg === 'heap probe'));
  // The journal's typed arrays live outside the V8 heap.
  return (line.heapUsed as number) + (line.arrayBuffers as number);
}

async function run(size: string, members: boolean, recovery: string, N: number, M: number): Promise<JournalRow> {
  const redis = await startRedis();
  let replica: Replica | undefined;
  let client: ReturnType<typeof connect> | undefined;
  let received = 0;
  try {
    replica = await startReplica({
      REDIS_URL: redis.url,
      PUBLISH_KEYS: KEY,
      HISTORY_ROOMS: 'h:* size=10',
      PUBLIC_ROOMS: 'h:*',
      ALLOW_ANONYMOUS: 'true',
      MAX_SUBSCRIPTIONS: String(Math.max(100, M)),
      CONNECTION_RECOVERY_SECONDS: recovery === 'off' ? '0' : '120',
    });
    const url = replica.url;
    if (members) {
      const member = (client = connect(url, { transports: ['websocket'], forceNew: true }));
      member.onAny(() => received++);
      await new Promise<void>((r) => member.once('connect', () => r()));
      await until('hello', () => (received > 0 ? true : undefined));
      received = 0;
      for (let i = 0; i < M; i++) await member.emitWithAck('subscribe', `h:r${i}`);
    }
    const before = await heap(replica);
    const body = JSON.stringify({ event: 'm', data: 'x'.repeat(SIZES[size]!) });
    let next = 0;
    const started = Date.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < N; i = next++) {
          const res = await fetch(`${url}/v1/publish`, {
            method: 'POST',
            headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
            body: `{"room":"h:r${i % M}",${body.slice(1)}`,
          });
          if (res.status !== 200) throw new Error(`publish answered ${res.status}`);
          await res.arrayBuffer();
        }
      }),
    );
    if (client) await until('every message delivered', () => (received >= N ? true : undefined));
    const seconds = (Date.now() - started) / 1000;
    const after = await heap(replica);
    return { size, messageBytes: SIZES[size]!, rooms: M, members, recovery, publishes: N, beforeBytes: before, afterBytes: after, bytesPerPublish: (after - before) / N, seconds };
  } finally {
    client?.close();
    replica?.child.kill('SIGKILL');
    if (replica) children.delete(replica.child);
    await redis.stop();
  }
}

/** Every case of `opts`: message size × rooms with or without a member × recovery off or on. */
export async function journalMemory(opts: JournalOptions = JOURNAL_DEFAULTS): Promise<JournalRow[]> {
  const rows: JournalRow[] = [];
  for (const size of opts.sizes) {
    if (!(size in SIZES)) throw new Error(`unknown size ${size}: use ${Object.keys(SIZES).join(' or ')}`);
    for (const members of [false, true]) {
      for (const recovery of opts.recovery) {
        const row = await run(size, members, recovery, opts.publishes, opts.rooms);
        console.error(journalTableRow(row));
        rows.push(row);
      }
    }
  }
  return rows;
}

/** The table's header and its rows, in markdown. */
export function journalTable(rows: JournalRow[]): string[] {
  return [
    '| message | history rooms | a member in each | recovery | publishes | heap before (MB) | heap after (MB) | bytes kept per publish | seconds |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(journalTableRow),
  ];
}

function journalTableRow(r: JournalRow): string {
  const mb = (b: number) => (b / 2 ** 20).toFixed(1);
  return `| ${r.size} (${r.messageBytes.toLocaleString('en')} B) | ${r.rooms} | ${r.members ? 'yes' : 'no'} | ${r.recovery} | ${r.publishes.toLocaleString('en')} | ${mb(r.beforeBytes)} | ${mb(r.afterBytes)} | ${Math.round(r.bytesPerPublish).toLocaleString('en')} | ${r.seconds.toFixed(1)} |`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rows = await journalMemory();
  console.log(`Heap + array buffers after GC of one replica (${MAIN.includes('/tmp/') ? MAIN : 'dist/main.js'}), history rooms with size=10, Node ${process.version}\n`);
  for (const line of journalTable(rows)) console.log(line);
  if (process.argv.includes('--record')) {
    const file = join(ROOT, 'bench/results.json');
    const results = JSON.parse(readFileSync(file, 'utf8')) as { journalSeparate?: SeparateJournalRun };
    results.journalSeparate = { generatedAt: new Date().toISOString(), commit: srcCommit(), rows };
    writeFileSync(file, JSON.stringify(results, null, 2));
    console.log('# journal memory: recorded in bench/results.json; `node --import tsx bench/run.ts --report` shows it');
  }
}
