/**
 * The processes of the scale scenario, all on loopback: one redis-server and N herald replicas,
 * unpinned (they share the machine's cores with the client processes), and the /proc readings
 * taken of them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { freePort } from '../../test/helpers/ports.js';
import { HERALD_ARGS, ROOT } from '../stacks.js';

export interface Proc {
  readonly pid: number;
  readonly name: string;
  /** Resolves with the exit code (null on a signal) once the process is gone. */
  readonly exited: Promise<number | null>;
  signal(sig: NodeJS.Signals): void;
}

const running = new Set<ChildProcess>();
// Whatever is still running when the scenario's process exits (an error, a signal turned into
// process.exit by run.ts, the test runner's force exit) goes with it.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Starts `cmd` and waits (bounded) for a stdout line matching `ready`. */
async function start(name: string, cmd: string, args: string[], env: Record<string, string>, ready: RegExp, log?: (line: string) => void): Promise<Proc> {
  const child: ChildProcess = spawn(cmd, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'inherit'], cwd: ROOT });
  running.add(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => running.delete(child));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in 30 s`)), 30_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      log?.(line);
      if (ready.test(line)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => reject(new Error(`${name} exited ${code} while starting`)));
  });
  return { pid: child.pid!, name, exited, signal: (sig) => child.kill(sig) };
}

export function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

export function rssBytes(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
  } catch {
    return 0;
  }
}

/**
 * Proportional set size: the process's private pages plus its share of those it shares (the node
 * binary's code, shared libraries), so summing it over processes counts each page once.
 */
export function pssBytes(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))![1]) * 1024;
  } catch {
    return 0;
  }
}

/**
 * The kernel's count of connections dropped because a listen queue was full (`TcpExtListenOverflows`,
 * machine-wide): a client whose handshake is dropped there waits for TCP to retransmit (1 s,
 * then 3 s, 7 s, ...). uWS listens with a backlog of 512 (`ss -ltn`), which a storm of reconnects
 * to a replica whose event loop is seconds behind overflows.
 */
export function listenOverflows(): number {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
    const [names, values] = lines.map((l) => l.split(/\s+/).slice(1));
    const i = names!.indexOf('ListenOverflows');
    return i < 0 ? NaN : Number(values![i]);
  } catch {
    return NaN;
  }
}

export interface Replica extends Proc {
  readonly url: string;
  readonly id: string;
  /** Warnings and errors it logged (level ≥ 40), for the report. */
  readonly problems: string[];
}

export interface ReplicaSettings {
  redisUrl: string;
  jwtSecret: string;
  publishKey: string;
  /** More herald settings (e.g. per-IP limits). */
  env: Record<string, string>;
  /** Extra node flags before herald's own (e.g. `--cpu-prof`; written when the replica exits normally). */
  nodeArgs?: string[];
  /** herald's entry point instead of this checkout's dist/main.js (e.g. another build, to compare before/after in one run). */
  main?: string;
}

let replicaCounter = 0;

export async function startReplica(s: ReplicaSettings): Promise<Replica> {
  const port = await freePort();
  const id = `scale-${++replicaCounter}`;
  const problems: string[] = [];
  const env = {
    REDIS_URL: s.redisUrl,
    PORT: String(port),
    HOST: '127.0.0.1',
    REPLICA_ID: id,
    JWT_SECRET: s.jwtSecret,
    PUBLISH_KEYS: s.publishKey,
    PUBLIC_ROOMS: 'scores:*',
    // The harness plays the balancer and sends each fan's own address in X-Forwarded-For.
    TRUST_PROXY: '1',
    HISTORY_ROOMS: 'scores:*',
    STATUS_PAGE: 'false',
    LOG_LEVEL: 'info',
    ...s.env,
  };
  // A flag given in nodeArgs replaces npm start's own (e.g. --max-semi-space-size).
  const given = new Set((s.nodeArgs ?? []).map((a) => a.split('=')[0]));
  const args = HERALD_ARGS.filter((a) => !given.has(a.split('=')[0])).map((a) => (s.main && a.endsWith('main.js') ? s.main : a));
  const proc = await start(id, process.execPath, [...(s.nodeArgs ?? []), ...args], env, /"msg":"listening"/, (line) => {
    if (/"level":(4|5|6)0/.test(line) && problems.length < 50) problems.push(line);
  });
  return { ...proc, url: `http://127.0.0.1:${port}`, id, problems };
}

let ceilingCounter = 0;

/**
 * The ceiling in a replica's place: raw uWebSockets.js pub/sub (bench/uws-ceiling.cjs) speaking
 * just enough Socket.IO for the fans, with `POST /v1/publish`. No Redis, auth, history or
 * recovery: what the transport alone does with the same fans on the same machine.
 */
export async function startCeiling(): Promise<Replica> {
  const port = await freePort();
  const id = `ceiling-${++ceilingCounter}`;
  const proc = await start(id, process.execPath, ['bench/uws-ceiling.cjs'], { PORT: String(port) }, /^listening/);
  return { ...proc, url: `http://127.0.0.1:${port}`, id, problems: [] };
}

export interface RedisServer extends Proc {
  readonly url: string;
  readonly client: Redis;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'herald-scale-redis-'));
  const proc = await start('redis-server', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {}, /Ready to accept connections/);
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  await client.connect();
  return {
    ...proc,
    url,
    client,
    async stop() {
      client.disconnect();
      proc.signal('SIGKILL');
      await proc.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Commands Redis has processed since it started (`INFO stats`). */
export async function redisCommands(redis: RedisServer): Promise<number> {
  const info = await redis.client.info('stats');
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? NaN);
}

/** A replica's `/readyz` body: its connections and refusals. */
export async function readiness(r: Replica): Promise<{ connections: number; connectionsRefused: Record<string, number> } | undefined> {
  try {
    // Generous: a replica on a saturated machine answers late, and a storm needs the count.
    const res = await fetch(`${r.url}/readyz`, { signal: AbortSignal.timeout(30_000) });
    return (await res.json()) as { connections: number; connectionsRefused: Record<string, number> };
  } catch {
    return undefined;
  }
}

/** A replica's `/metrics` text (generous timeout: a replica on a saturated machine answers late). */
async function metricsText(r: Replica, key: string): Promise<string> {
  const res = await fetch(`${r.url}/metrics`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(30_000) });
  return res.text();
}

/** A replica's counter `metric` by the value of its one label (e.g. `herald_session_recovery_total` by outcome: saved, recovered, not_found, …); empty if it did not answer. */
export async function countsByLabel(r: Replica, key: string, metric: string, label: string): Promise<Record<string, number>> {
  try {
    const out: Record<string, number> = {};
    const line = new RegExp(`^${metric}\\{${label}="(\\w+)"\\} (\\S+)$`, 'gm');
    for (const m of (await metricsText(r, key)).matchAll(line)) out[m[1]!] = Number(m[2]);
    return out;
  } catch {
    return {};
  }
}

/** A replica's worst event-loop lag since the last scrape (prom-client's monitor), seconds. */
export async function eventLoopLagMax(r: Replica, key: string): Promise<number | undefined> {
  try {
    const m = /^herald_nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(await metricsText(r, key));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
