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

/** A pool of client processes, optionally pinned to CPUs with taskset. */
export class Workers {
  private constructor(private readonly procs: ChildProcess[]) {}

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
    return new Workers(procs);
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
