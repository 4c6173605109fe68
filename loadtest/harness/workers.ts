import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { WorkerCommand, WorkerReply, WorkerReport } from './protocol.js';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** CPU seconds (user + system) a process has used, from /proc (Linux). */
export function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Loopback source addresses, so more connections than one address's ephemeral ports fit. */
export function loopbackAddresses(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `127.0.0.${i + 1}`);
}

/** Busy seconds of one CPU since boot, from /proc/stat (everything but idle and iowait), whoever ran. */
export function cpuBusySeconds(cpu: number): number | undefined {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${cpu} `));
  if (!line) return undefined;
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) / 100;
}

/**
 * Above this share of the client core, a step measures the client as much as the server: it is
 * marked client-bound and not counted as the server's ceiling.
 */
export const CLIENT_BOUND = 0.8;

/** A reading of the client side's CPU, to compare with a later one (`clientLoad`). */
export interface ClientCpuMark {
  at: number;
  processes: number;
  core: number | undefined;
}

/** What the client side used between two readings. */
export interface ClientLoad {
  /** CPU of the client processes (workers and coordinator) over wall time: their share of the client core. */
  utilisation: number;
  /** The client core's busy share over the same time, whoever used it (others share this machine). */
  coreBusy: number | undefined;
  /** `utilisation` above CLIENT_BOUND. */
  clientBound: boolean;
}

export function clientLoad(a: ClientCpuMark, b: ClientCpuMark): ClientLoad {
  const wall = Math.max(0.001, (b.at - a.at) / 1000);
  const utilisation = (b.processes - a.processes) / wall;
  return { utilisation, coreBusy: a.core === undefined || b.core === undefined ? undefined : (b.core - a.core) / wall, clientBound: utilisation > CLIENT_BOUND };
}

/** A pool of client processes, optionally pinned to CPUs with taskset. */
export class Workers {
  private constructor(
    private readonly procs: ChildProcess[],
    /** The one CPU the workers are pinned to, if they are pinned to one. */
    private readonly cpu: number | undefined,
  ) {}

  /** Reads the client side's CPU now (see `clientLoad`). */
  mark(): ClientCpuMark {
    return { at: Date.now(), processes: this.cpuSeconds(), core: this.cpu === undefined ? undefined : cpuBusySeconds(this.cpu) };
  }

  static async start(count: number, opts: { cpus?: string } = {}): Promise<Workers> {
    const procs: ChildProcess[] = [];
    for (let i = 0; i < count; i++) {
      // HARNESS_WORKER_PROFILE=<dir>: each worker writes a V8 CPU profile there when it exits.
      const node = ['--import', 'tsx', ...(process.env.HARNESS_WORKER_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.HARNESS_WORKER_PROFILE}`] : [])];
      const child = opts.cpus
        ? fork(WORKER, [], { execPath: 'taskset', execArgv: ['-c', opts.cpus, process.execPath, ...node], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
        : fork(WORKER, [], { execArgv: node, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      procs.push(child);
    }
    await Promise.all(procs.map((p) => Workers.next(p, 'ready')));
    return new Workers(procs, opts.cpus !== undefined && /^\d+$/.test(opts.cpus) ? Number(opts.cpus) : undefined);
  }

  /** The client processes' pids (for CPU readings from /proc). */
  get pids(): number[] {
    return this.procs.map((p) => p.pid!);
  }

  /**
   * CPU seconds (user + system) used so far by the client side: the worker processes and this
   * coordinator (which publishes). Over wall time, the share of the client core they took.
   */
  cpuSeconds(): number {
    return [...this.pids, process.pid].reduce((a, pid) => a + processCpuSeconds(pid), 0);
  }

  get size(): number {
    return this.procs.length;
  }

  private static async next<T extends WorkerReply['cmd']>(p: ChildProcess, cmd: T): Promise<Extract<WorkerReply, { cmd: T }>> {
    for (;;) {
      const [msg] = (await once(p, 'message')) as [WorkerReply];
      if (msg.cmd === 'error') throw new Error(`harness worker: ${msg.message}`);
      if (msg.cmd === cmd) return msg as Extract<WorkerReply, { cmd: T }>;
    }
  }

  /** Sends `make(i)` to worker i and waits for each one's `reply`. */
  async all<T extends WorkerReply['cmd']>(make: (i: number) => WorkerCommand, reply: T): Promise<Extract<WorkerReply, { cmd: T }>[]> {
    return Promise.all(
      this.procs.map((p, i) => {
        const answer = Workers.next(p, reply);
        p.send(make(i));
        return answer;
      }),
    );
  }

  reports(): Promise<WorkerReport[]> {
    return this.all(() => ({ cmd: 'report' }), 'report');
  }

  /** Closes the connections and lets the workers exit by themselves (bounded: then SIGKILL). */
  async stop(): Promise<void> {
    await this.all(() => ({ cmd: 'close' }), 'closed').catch(() => {});
    await Promise.all(
      this.procs.map(async (p) => {
        if (p.exitCode !== null || p.signalCode !== null) return;
        const exited = once(p, 'exit');
        p.disconnect();
        const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}
