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
 * N=…, M=… and SIZES=small,60k change the run; CASES=on,off picks recovery settings.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { io as connect } from 'socket.io-client';
import { startRedis } from '../test/helpers/redis.js';

const MAIN = process.env.HERALD_MAIN ?? fileURLToPath(new URL('../dist/main.js', import.meta.url));
const PROBE = fileURLToPath(new URL('../test/fixtures/heap-probe.cjs', import.meta.url));
const KEY = 'journal-memory-bench-key-0123456789';
const N = Number(process.env.N ?? 5000);
const M = Number(process.env.M ?? 50);
const SIZES: Record<string, number> = { small: 100, '60k': 60 * 1024 };
const sizes = (process.env.SIZES ?? 'small,60k').split(',');
const recoveryCases = (process.env.CASES ?? 'off,on').split(',');
const CONCURRENCY = 8;

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

async function run(size: string, members: boolean, recovery: string): Promise<string> {
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
    const mb = (b: number) => (b / 2 ** 20).toFixed(1);
    return `| ${size} | ${M} | ${members ? 'yes' : 'no'} | ${recovery} | ${N} | ${mb(before)} | ${mb(after)} | ${(((after - before) / N) | 0).toLocaleString('en')} | ${seconds.toFixed(1)} |`;
  } finally {
    client?.close();
    replica?.child.kill('SIGKILL');
    if (replica) children.delete(replica.child);
    await redis.stop();
  }
}

const rows: string[] = [];
for (const size of sizes) {
  for (const members of [false, true]) {
    for (const recovery of recoveryCases) {
      const row = await run(size, members, recovery);
      console.error(row);
      rows.push(row);
    }
  }
}
console.log(`Heap + array buffers after GC of one replica (${MAIN.includes('/tmp/') ? MAIN : 'dist/main.js'}), ${N} publishes over ${M} history rooms (size=10), Node ${process.version}\n`);
console.log('| Message | Rooms | Member in each | Recovery | Publishes | Before (MB) | After (MB) | Bytes kept per publish | Seconds |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) console.log(r);
