import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startRedis, type RedisProcess } from './redis.js';
import { onceWithin, waitFor } from './wait.js';
import { killNow, owned } from './children.js';

const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** A herald process (`dist/main.js`) on a free port, with its JSON log lines parsed. */
export interface Gateway {
  readonly url: string;
  readonly port: number;
  readonly replicaId: string;
  readonly logs: LogLine[];
  readonly process: ChildProcess;
  /** Resolves with the first log line matching `predicate`, already seen or still to come. */
  waitForLog(what: string, predicate: (l: LogLine) => boolean): Promise<LogLine>;
  /** Resolves with the exit code (null when killed by a signal). */
  exited(): Promise<number | null>;
  signal(sig: NodeJS.Signals): void;
  stop(): Promise<void>;
}

export interface GatewayOptions {
  env?: Record<string, string>;
  /** Extra node flags, e.g. `--require` of a fixture. */
  nodeArgs?: string[];
  /** A command that runs node (e.g. `unshare -n ...` for another network namespace), given node and its arguments last. */
  launcher?: string[];
  /** The address the test reaches it at. @default 127.0.0.1 */
  reachAt?: string;
  /** Run under this descriptor limit, soft and hard (`prlimit --nofile`; the process keeps its pid). */
  nofile?: number;
}

let counter = 0;

export async function startGateway(opts: GatewayOptions = {}): Promise<Gateway> {
  const replicaId = `gw-${process.pid}-${++counter}`;
  const node = [...(opts.launcher ?? []), process.execPath, ...(opts.nodeArgs ?? []), MAIN];
  const [command, ...args] = opts.nofile === undefined ? node : ['prlimit', `--nofile=${opts.nofile}:${opts.nofile}`, ...node];
  const child = owned(
    spawn(command!, args, {
      env: { PATH: process.env.PATH, PORT: '0', HOST: '127.0.0.1', REPLICA_ID: replicaId, DRAIN_SECONDS: '1', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const logs: LogLine[] = [];
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      logs.push({ level: 0, msg: line });
    }
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exit.then((c) => {
    exitCode = c;
  });
  const waitForLog = (what: string, predicate: (l: LogLine) => boolean) =>
    waitFor(`log "${what}" from ${replicaId}`, () => {
      const hit = logs.find(predicate);
      if (!hit && exitCode !== undefined) {
        throw new Error(`gateway exited (${exitCode}) before "${what}".\nstderr: ${stderr}\nlogs: ${JSON.stringify(logs)}`);
      }
      return hit;
    });
  const listening = await waitForLog('listening', (l) => l.msg === 'listening');
  const port = listening.port as number;
  return {
    url: `http://${opts.reachAt ?? '127.0.0.1'}:${port}`,
    port,
    replicaId,
    logs,
    process: child,
    waitForLog,
    exited: () => exit,
    signal: (sig) => child.kill(sig),
    async stop() {
      if (exitCode === undefined) await killNow(child, replicaId);
    },
  };
}

/** Runs the gateway to completion, for start-up failures: exit code and output. */
export async function runGatewayToExit(env: Record<string, string>): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const child = owned(
    spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH, PORT: '0', HOST: '127.0.0.1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code] = await onceWithin<[number | null]>(child, 'exit', 'gateway to exit');
  return { code, stderr, stdout };
}

/**
 * The gateways of a backend under test: `memory`, one gateway on its own; `redis`, a private
 * redis-server (returned, for the test to stop) and two gateways sharing it.
 */
export async function startBackend(
  backend: 'memory' | 'redis',
  env: Record<string, string>,
): Promise<{ gateways: Gateway[]; redis: RedisProcess | undefined }> {
  if (backend === 'memory') return { gateways: [await startGateway({ env })], redis: undefined };
  const redis = await startRedis();
  const shared = { ...env, REDIS_URL: redis.url };
  return { gateways: [await startGateway({ env: shared }), await startGateway({ env: shared })], redis };
}
