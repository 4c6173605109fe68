/**
 * The stacks the benchmark compares, started as child processes pinned to the server CPU, and the
 * /proc readings it takes of them. Shared by bench/run.ts and bench/probe.ts.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { PusherApp } from '../loadtest/harness/pusher.js';
import { freePort } from '../test/helpers/ports.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const SERVER_CPU = '0';
export const CLIENT_CPU = '1';

export interface Proc {
  pid: number;
  /** Sends `signal` (default SIGKILL) and resolves once the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts a process pinned to the server CPU and waits for its `ready` line (bounded). */
export async function start(cmd: string, args: string[], env: Record<string, string>, ready: RegExp): Promise<Proc> {
  const child: ChildProcess = spawn('taskset', ['-c', SERVER_CPU, cmd, ...args], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
    cwd: ROOT,
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start`)), 15_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (ready.test(line)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`${cmd} exited ${code}`)));
  });
  return {
    pid: child.pid!,
    stop: (signal = 'SIGKILL') =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      }),
  };
}

/** CPU seconds (user + system) a process has used, from /proc. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export function rssBytes(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

export interface Stack {
  name: string;
  urls: string[];
  servers: Proc[];
  /** Every server-side process, Redis included, for CPU accounting. */
  all: Proc[];
  /** Set for a Pusher-protocol stack (soketi): its clients and publisher speak Pusher, not Socket.IO. */
  pusher?: PusherApp;
  stop(): Promise<void>;
}

export async function redis(): Promise<{ proc: Proc; url: string; dir: string }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-redis-'));
  const proc = await start('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {}, /Ready to accept connections/);
  return { proc, url: `redis://127.0.0.1:${port}`, dir };
}

export const HERALD_ENV = {
  LOG_LEVEL: 'info',
  STATUS_PAGE: 'false',
  CONNECT_RATE_PER_IP: '100000',
  CONNECT_BURST_PER_IP: '100000',
  // Every bench client comes from 127.0.0.1; the jitter scenario restores ~100 sessions a second.
  RECOVERY_RESTORES_PER_IP: '1000000',
  // The bench measures fan-out, not the slow-consumer policy: keep it out of the way.
  SLOW_CLIENT_MAX_BYTES: String(256 * 1024 * 1024),
};

/**
 * `PROF_DIR=<dir>`: every herald replica of `heraldStack` writes a V8 CPU profile there
 * (`--cpu-prof`, not allowed in NODE_OPTIONS), stopped with SIGTERM so that it is written.
 */
const PROF_DIR = process.env.PROF_DIR;

/** node's arguments for a herald replica: those of `npm start` (which the Dockerfile's CMD repeats). */
export const HERALD_ARGS = [
  ...(PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROF_DIR}`] : []),
  ...(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start.split(' ').slice(1),
];

/**
 * For trying settings on the replicas alone (bench/probe.ts, bench/memory.ts), read when a stack
 * starts: `HERALD_NODE_OPTIONS` (V8 flags), and herald's own `BROADCAST_BATCH_MS`,
 * `CONNECTION_RECOVERY_SECONDS` (for the cost of recovery: 0 turns it off), `HISTORY_ROOMS`
 * (`load:*`: the bench's rooms keep history, for what a history-room subscriber costs) and
 * `CONFLATE_ROOMS` (for the cost of conflation on healthy connections, e.g. `scores:*` with
 * bench/compression.ts).
 */
const fromEnvironment = (): Record<string, string> => ({
  ...(process.env.HERALD_NODE_OPTIONS ? { NODE_OPTIONS: process.env.HERALD_NODE_OPTIONS } : {}),
  ...(process.env.BROADCAST_BATCH_MS ? { BROADCAST_BATCH_MS: process.env.BROADCAST_BATCH_MS } : {}),
  ...(process.env.CONNECTION_RECOVERY_SECONDS ? { CONNECTION_RECOVERY_SECONDS: process.env.CONNECTION_RECOVERY_SECONDS } : {}),
  ...(process.env.HISTORY_ROOMS ? { HISTORY_ROOMS: process.env.HISTORY_ROOMS } : {}),
  ...(process.env.CONFLATE_ROOMS ? { CONFLATE_ROOMS: process.env.CONFLATE_ROOMS } : {}),
});

export async function heraldStack(name: string, transport: 'uws' | 'node', replicas: number, extra: Record<string, string> = {}): Promise<Stack> {
  const r = await redis();
  const servers: Proc[] = [];
  const urls: string[] = [];
  for (let i = 0; i < replicas; i++) {
    const port = await freePort();
    servers.push(
      await start(process.execPath, HERALD_ARGS, { ...HERALD_ENV, ...fromEnvironment(), TRANSPORT: transport, REDIS_URL: r.url, PORT: String(port), HOST: '127.0.0.1', REPLICA_ID: `bench-${transport}-${i}`, ...extra }, /"msg":"listening"/),
    );
    urls.push(`http://127.0.0.1:${port}`);
  }
  return {
    name,
    urls,
    servers,
    all: [...servers, r.proc],
    async stop() {
      await Promise.all(servers.map((p) => p.stop(PROF_DIR ? 'SIGTERM' : undefined)));
      await r.proc.stop();
      rmSync(r.dir, { recursive: true, force: true });
    },
  };
}

export async function stockStack(extra: Record<string, string> = {}): Promise<Stack> {
  const r = await redis();
  const servers: Proc[] = [];
  const urls: string[] = [];
  for (let i = 0; i < 2; i++) {
    const port = await freePort();
    servers.push(await start(process.execPath, ['bench/stock-server.cjs'], { REDIS_URL: r.url, PORT: String(port), ...extra }, /^listening/));
    urls.push(`http://127.0.0.1:${port}`);
  }
  return { name: 'stock Socket.IO + redis-adapter (2 processes, ws)', urls, servers, all: [...servers, r.proc], stop: async () => {
    await Promise.all([...servers, r.proc].map((p) => p.stop()));
    rmSync(r.dir, { recursive: true, force: true });
  } };
}

export async function ceilingStack(): Promise<Stack> {
  const port = await freePort();
  const p = await start(process.execPath, ['bench/uws-ceiling.cjs'], { PORT: String(port) }, /^listening/);
  return { name: 'raw uWebSockets.js pub/sub (1 process, no Redis)', urls: [`http://127.0.0.1:${port}`], servers: [p], all: [p], stop: () => p.stop() };
}

/** The stacks by the names bench/probe.ts and bench/memory.ts take. */
export const STACKS: Record<string, () => Promise<Stack>> = {
  'herald-uws': () => heraldStack('herald-uws', 'uws', 2),
  'herald-uws-1': () => heraldStack('herald-uws-1', 'uws', 1, { REDIS_URL: '' }),
  'herald-uws-1-redis': () => heraldStack('herald-uws-1-redis', 'uws', 1),
  'herald-ws': () => heraldStack('herald-ws', 'node', 2),
  stock: () => stockStack(),
  ceiling: ceilingStack,
  soketi: () => soketiStack('soketi', 2),
  'soketi-1': () => soketiStack('soketi-1', 1),
};

/** CPU microseconds per item (a delivery, a message), from CPU seconds over a run; the same number is milliseconds per 1,000 items. */
/** One variant of a bench run: a name and the herald settings it runs with. */
export interface Variant {
  name: string;
  env: Record<string, string>;
}

/** `VARIANTS` as the benches take it: `name:ENV=v,ENV=v;name:...` (a value may hold `=` or `:`). */
export function parseVariants(raw: string): Variant[] {
  return raw.split(';').map((v) => {
    const [name, settings = ''] = v.split(/:(.*)/s) as [string, string?];
    return { name: name.trim(), env: Object.fromEntries(settings.split(',').filter(Boolean).map((kv) => kv.split(/=(.*)/s).slice(0, 2) as [string, string])) };
  });
}

export const cpuUsEach = (cpu: number, items: number): number => (cpu / Math.max(1, items)) * 1e6;

/** CPU seconds used so far by all of a stack's processes, Redis included. */
export const stackCpuSeconds = (stack: Stack): number => stack.all.reduce((a, p) => a + cpuSeconds(p.pid), 0);

/** Runs `fn` and returns its result with the CPU seconds the stack's processes used meanwhile. */
export async function withCpu<T>(stack: Stack, fn: () => Promise<T>): Promise<{ result: T; cpu: number }> {
  const before = stackCpuSeconds(stack);
  const result = await fn();
  return { result, cpu: stackCpuSeconds(stack) - before };
}


/** Pins this process (every thread: the publisher lives here) to the client CPU, beside the workers. */
export function pinToClientCpu(): void {
  execFileSync('taskset', ['-a', '-p', '-c', CLIENT_CPU, String(process.pid)], { stdio: 'ignore' });
}

/** Soketi's folder: its own package.json and lockfile, never herald's dependencies. */
export const SOKETI_DIR = join(ROOT, 'bench/peers/soketi');
/** The app every soketi stack serves (soketi's default app, spelled out). */
export const SOKETI_APP = { id: 'app-id', key: 'app-key', secret: 'app-secret' } as const;

/** Installs soketi from its lockfile the first time (bounded), then checks that uWS is native. */
function ensureSoketi(): string {
  const bin = join(SOKETI_DIR, 'node_modules/@soketi/soketi/bin/server.js');
  if (!existsSync(bin)) {
    console.log('# bench: installing soketi into bench/peers/soketi (npm ci)');
    execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: SOKETI_DIR, stdio: 'inherit', timeout: 600_000 });
  }
  // The uWS mirror falls back to a pure-JS `ws` shim, with only a warning, when its binary cannot load.
  const native = join(SOKETI_DIR, `node_modules/uWebSockets.js/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  if (!existsSync(native)) throw new Error(`soketi: no native uWebSockets.js binary at ${native}`);
  return bin;
}

/**
 * Soketi 1.6.1 (Pusher protocol on uWebSockets.js): `replicas` processes behind no balancer, with
 * their own redis-server and soketi's redis adapter when there are several, or the local adapter
 * for one. Every address is loopback: the HTTP/WebSocket and /usage servers bind 127.0.0.1, and the
 * node discovery soketi always starts (UDP, by default a broadcast to 255.255.255.255) is sent to
 * 127.0.0.1 only.
 */
export async function soketiStack(name: string, replicas: number): Promise<Stack> {
  const bin = ensureSoketi();
  const r = replicas > 1 ? await redis() : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-soketi-'));
  const discovery = await freePort();
  const servers: Proc[] = [];
  const urls: string[] = [];
  try {
    for (let i = 0; i < replicas; i++) {
      const port = await freePort();
      const config = join(dir, `soketi-${i}.json`);
      writeFileSync(
        config,
        JSON.stringify({
          host: '127.0.0.1',
          port,
          'metrics.host': '127.0.0.1',
          'metrics.port': await freePort(),
          'cluster.address': '127.0.0.1',
          'cluster.hostname': '127.0.0.1',
          'cluster.port': discovery,
          'cluster.unicast': `127.0.0.1:${discovery}`,
          'adapter.driver': r ? 'redis' : 'local',
          ...(r ? { 'database.redis.host': '127.0.0.1', 'database.redis.port': Number(new URL(r.url).port) } : {}),
          'appManager.array.apps': [{ ...SOKETI_APP, maxConnections: -1, enableClientMessages: false, enabled: true, maxBackendEventsPerSecond: -1, maxClientEventsPerSecond: -1, maxReadRequestsPerSecond: -1, webhooks: [] }],
        }),
      );
      // HOME: soketi's pm2 wants one, and would otherwise write under /etc/.pm2.
      servers.push(await start(process.execPath, [bin, 'start', `--config=${config}`], { SOKETI_DEBUG: '0', HOME: dir }, /Server is up and running/));
      urls.push(`http://127.0.0.1:${port}`);
    }
  } catch (err) {
    await Promise.all([...servers, ...(r ? [r.proc] : [])].map((p) => p.stop()));
    throw err;
  }
  const all = [...servers, ...(r ? [r.proc] : [])];
  return {
    name,
    urls,
    servers,
    all,
    pusher: SOKETI_APP,
    async stop() {
      await Promise.all(all.map((p) => p.stop()));
      rmSync(dir, { recursive: true, force: true });
      if (r) rmSync(r.dir, { recursive: true, force: true });
    },
  };
}
