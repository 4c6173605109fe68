/**
 * The coordinator's side of the fans scenario: forks the client processes, splits the fans over
 * them, and adds up what they report.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { FansCommand, FansPlan, FansReply, FansReport, FansStatus, PhaseReport } from './protocol.js';
import { addCounts, Histogram } from './stats.js';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** One phase over every client process: the workers' counts added up, their latencies merged. */
export interface PhaseTotals extends Omit<PhaseReport, 'latency' | 'healthyLatency' | 'broadcasts'> {
  latency: Histogram;
  healthyLatency: Histogram;
  broadcasts: Map<number, { lastAt: number; fans: number }>;
}

export interface PoolReport extends Omit<FansReport, 'cmd' | 'phases'> {
  phases: Map<string, PhaseTotals>;
}

export class FanPool {
  private constructor(private readonly procs: ChildProcess[]) {}

  static async start(count: number): Promise<FanPool> {
    // HARNESS_WORKER_PROFILE=<dir>: each client process writes a V8 CPU profile there when it exits.
    const profile = process.env.HARNESS_WORKER_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.HARNESS_WORKER_PROFILE}`] : [];
    const procs = Array.from({ length: count }, () => fork(WORKER, [], { execArgv: ['--import', 'tsx', ...profile], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    const pool = new FanPool(procs);
    await Promise.all(procs.map((p) => FanPool.next(p, 'ready')));
    return pool;
  }

  get pids(): number[] {
    return this.procs.map((p) => p.pid!);
  }

  private static async next<T extends FansReply['cmd']>(p: ChildProcess, cmd: T): Promise<Extract<FansReply, { cmd: T }>> {
    for (;;) {
      const [msg] = (await once(p, 'message')) as [FansReply];
      if (msg.cmd === 'error') throw new Error(`fans worker: ${msg.message}`);
      if (msg.cmd === cmd) return msg as Extract<FansReply, { cmd: T }>;
    }
  }

  private all<T extends FansReply['cmd']>(make: (i: number) => FansCommand, reply: T): Promise<Extract<FansReply, { cmd: T }>[]> {
    return Promise.all(this.procs.map((p, i) => {
      const answer = FanPool.next(p, reply);
      p.send(make(i));
      return answer;
    }));
  }

  /** Creates `total` fans spread evenly over the processes; they start connecting at once. */
  async open(total: number, plan: Omit<FansPlan, 'from' | 'to'>): Promise<void> {
    const per = Math.ceil(total / this.procs.length);
    await this.all((i) => ({ cmd: 'open', ...plan, from: Math.min(total, i * per), to: Math.min(total, (i + 1) * per) }), 'opened');
  }

  async status(): Promise<Omit<FansStatus, 'cmd'>> {
    const all = await this.all(() => ({ cmd: 'status' }), 'status');
    const perSecond: Record<string, number> = {};
    const states: Record<string, number> = {};
    for (const s of all) {
      addCounts(perSecond, s.firstLivePerSecond);
      addCounts(states, s.states);
    }
    return {
      fans: all.reduce((a, s) => a + s.fans, 0),
      live: all.reduce((a, s) => a + s.live, 0),
      delivered: all.reduce((a, s) => a + s.delivered, 0),
      lastBackAt: Math.max(...all.map((s) => s.lastBackAt)),
      lastFirstLiveAt: Math.max(...all.map((s) => s.lastFirstLiveAt)),
      droppedInPhase: all.reduce((a, s) => a + s.droppedInPhase, 0),
      firstLivePerSecond: perSecond,
      states,
    };
  }

  async phase(name: string): Promise<void> {
    await this.all(() => ({ cmd: 'phase', name }), 'phase');
  }

  async urls(urls: string[]): Promise<void> {
    await this.all(() => ({ cmd: 'urls', urls }), 'urls');
  }

  async report(accepted: Extract<FansCommand, { cmd: 'report' }>['accepted']): Promise<PoolReport> {
    const all = await this.all(() => ({ cmd: 'report', accepted }), 'report');
    const phases = new Map<string, PhaseTotals>();
    const sum = (k: 'fans' | 'missingAll' | 'missingMatch' | 'notLive' | 'missingOnLive' | 'duplicates' | 'userReceived' | 'userExpected') => all.reduce((a, r) => a + r[k], 0);
    const droppedFans: Record<string, number> = {};
    const droppedComplete: Record<string, number> = {};
    for (const r of all) {
      addCounts(droppedFans, r.droppedFans);
      addCounts(droppedComplete, r.droppedComplete);
      for (const [name, p] of Object.entries(r.phases)) {
        let t = phases.get(name);
        if (!t) phases.set(name, (t = emptyPhase()));
        mergePhase(t, p);
      }
    }
    return {
      phases,
      fans: sum('fans'),
      missingAll: sum('missingAll'),
      missingMatch: sum('missingMatch'),
      notLive: sum('notLive'),
      missingOnLive: sum('missingOnLive'),
      duplicates: sum('duplicates'),
      userReceived: sum('userReceived'),
      userExpected: sum('userExpected'),
      droppedFans,
      droppedComplete,
    };
  }

  /** Closes every connection and lets the processes exit (SIGKILL after 5 s). */
  async stop(): Promise<void> {
    await this.all(() => ({ cmd: 'close' }), 'closed').catch(() => {});
    await Promise.all(this.procs.map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const exited = once(p, 'exit');
      p.disconnect();
      const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }));
  }
}

function emptyPhase(): PhaseTotals {
  return {
    latency: new Histogram(),
    healthyLatency: new Histogram(),
    broadcasts: new Map(),
    delivered: 0,
    replayed: 0,
    drops: 0,
    refusals: {},
    reconnects: 0,
    redispatched: 0,
    sessionsRecovered: 0,
    sinceRecovered: 0,
    sinceNotRecovered: 0,
    resets: 0,
    backPer100ms: {},
  };
}

function mergePhase(t: PhaseTotals, p: PhaseReport): void {
  t.latency.addPairs(p.latency);
  t.healthyLatency.addPairs(p.healthyLatency);
  for (const [seq, [lastAt, fans]] of Object.entries(p.broadcasts)) {
    const b = t.broadcasts.get(Number(seq));
    if (!b) t.broadcasts.set(Number(seq), { lastAt, fans });
    else {
      b.lastAt = Math.max(b.lastAt, lastAt);
      b.fans += fans;
    }
  }
  for (const k of ['delivered', 'replayed', 'drops', 'reconnects', 'redispatched', 'sessionsRecovered', 'sinceRecovered', 'sinceNotRecovered', 'resets'] as const) t[k] += p[k];
  addCounts(t.refusals, p.refusals);
  addCounts(t.backPer100ms, p.backPer100ms);
}
