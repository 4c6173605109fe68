/**
 * `node --import tsx bench/hop.ts`: the Redis hop side by side in one run. The benchmark's
 * fan-out scenario (SUBSCRIBERS, default 1,000, in one room, RATE messages/s, default 100, for
 * STEP_SECONDS, default 5) on raw uWS and on herald's 2 replicas + Redis under each variant,
 * ROUNDS times (default 3), the order of the stacks turned around every round so that a machine
 * whose load drifts weighs on each alike. For each run: whole-stack CPU per 1,000 deliveries over
 * the whole scenario (connects and closes included, as `npm run bench` counts it) and over the
 * publishing alone (its tail included), split by process, and missing / duplicates; then the
 * medians, and each variant's ratio to raw uWS taken within each round.
 *
 * VARIANTS: `name:ENV=v,ENV=v;name:...` (herald settings for the replicas; default
 * `herald:` alone; `REPLICAS=1` for one replica, with `REDIS_URL=` for none without Redis). Servers on CPU 0, clients on CPU 1, as in `npm run bench`.
 */
import { loadavg } from 'node:os';
import * as scenarios from '../loadtest/harness/scenarios.js';
import { Workers } from '../loadtest/harness/workers.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLIENT_CPU, ceilingStack, cpuSeconds, cpuUsEach, heraldStack, parseVariants, pinToClientCpu, stackCpuSeconds, type Stack } from './stacks.js';

pinToClientCpu();

const variants = parseVariants(process.env.VARIANTS ?? 'herald:');
/** Context switches of a process so far, voluntary and not: how often it was woken or put off the core. */
const switches = (pid: number): number => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)![1]) + Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)![1]);
};
/**
 * System calls and wake-ups of each of a stack's processes over the publishing, counted by
 * `perf stat` (software events: no hardware counters needed) when PERF=1: unlike CPU time, these
 * counts barely move with the machine's load.
 */
function perfCounters(pids: Record<string, number>, record?: (name: string) => string) {
  let running: { name: string; child: ChildProcess; out: Promise<string> }[] = [];
  return {
    start(): number {
      running = Object.entries(pids).map(([name, pid]) => {
        const args = record
          ? ['record', '-q', '-F', '999', '-e', 'cpu-clock', '-g', '-p', String(pid), '-o', record(name)]
          : ['stat', '-x', ',', '-e', 'raw_syscalls:sys_enter,context-switches', '-p', String(pid)];
        const child = spawn('perf', args, { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
        return { name, child, out: new Promise<string>((resolve) => child.once('exit', () => resolve(err))) };
      });
      return 0;
    },
    stop(): number {
      for (const r of running) r.child.kill('SIGINT');
      return 0;
    },
    async read(): Promise<Record<string, { syscalls: number; switches: number }>> {
      const out: Record<string, { syscalls: number; switches: number }> = {};
      for (const r of running) {
        const text = await r.out;
        const count = (event: string) => Number(new RegExp(`^(\\d+),[^,]*,${event}`, 'm').exec(text)?.[1] ?? NaN);
        out[r.name] = { syscalls: count('raw_syscalls:sys_enter'), switches: count('context-switches') };
      }
      return out;
    },
  };
}
/**
 * PERF_RECORD=<dir>: instead of counting, `perf record` each server process on its CPU over the
 * publishing (kernel and native code included, which V8's profiler cannot see), one file per
 * stack, round and process: `perf report -i <file> --no-children`, or, per published message,
 * bench/perf-split.ts.
 */
const PERF_RECORD = process.env.PERF_RECORD;
const PERF = process.env.PERF === '1' || !!PERF_RECORD;
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const RATE = Number(process.env.RATE ?? 100);
const SECONDS = Number(process.env.STEP_SECONDS ?? 5);
/** Subscribers of the one room (default 1,000); a few, with a high RATE, leave each message's own cost (the hop's) bare. */
const SUBSCRIBERS = Number(process.env.SUBSCRIBERS ?? 1000);
/**
 * WARMUP_SECONDS (default 0): before the measured run, the same scenario on the same stack for
 * this long, not counted. A replica that has run for a while has its JavaScript compiled by V8's
 * optimizing tier; a fresh one spends part of the first seconds on that (in a compiler thread)
 * and runs the rest slower meanwhile. Raw uWS gets the same warm-up.
 */
const WARMUP_SECONDS = Number(process.env.WARMUP_SECONDS ?? 0);

interface Run {
  stack: string;
  round: number;
  delivered: number;
  expected: number;
  missing: number;
  duplicates: number;
  /** Whole scenario, ms per 1,000 deliveries. */
  whole: number;
  /** The publishing and its tail, ms per 1,000 deliveries. */
  publishing: number;
  /** The connects and subscribes, ms per 1,000 deliveries (the closes are the whole less this and the publishing). */
  opening: number;
  /** The publishing, by process, ms per 1,000 deliveries. */
  byProcess: Record<string, number>;
  /** Context switches of all the stack's processes per published message, over the publishing. */
  switchesPerMessage: number;
  /** PERF=1: system calls and context switches per published message, by process. */
  perMessage?: Record<string, { syscalls: number; switches: number }>;
  p99: number;
}

const makers: { name: string; make: () => Promise<Stack> }[] = [
  { name: 'raw uWS', make: ceilingStack },
  ...variants.map((v) => {
    const { REPLICAS = '2', ...env } = v.env;
    return { name: v.name, make: () => heraldStack(v.name, 'uws', Number(REPLICAS), env) };
  }),
];

const workers = await Workers.start(2, { cpus: CLIENT_CPU });
const runs: Run[] = [];
console.log(`# bench/hop: ${RATE} msg/s × ${SUBSCRIBERS} subscribers for ${SECONDS} s${WARMUP_SECONDS > 0 ? ` after a ${WARMUP_SECONDS}-s warm-up` : ''}, ${ROUNDS} rounds; load average at start ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
try {
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? makers : [...makers].reverse();
    for (const m of order) {
      const stack = await m.make();
      try {
        const names = stack.all.length === 1 ? ['server'] : [...stack.servers.map((_, i) => `replica ${i}`), 'redis'];
        const counters: Record<string, () => number> = Object.fromEntries(stack.all.map((p, i) => [names[i]!, () => cpuSeconds(p.pid)]));
        counters.switches = () => stack.all.reduce((a, p) => a + switches(p.pid), 0);
        const record = PERF_RECORD ? (proc: string) => join(PERF_RECORD, `${m.name}-${round}-${proc}.data`.replace(/[^\w.-]+/g, '_')) : undefined;
        const perf = PERF ? perfCounters(Object.fromEntries(stack.all.map((p, i) => [names[i]!, p.pid])), record) : undefined;
        // fanoutLatency reads its counters before the connects, before the publishing and after
        // it: perf counts from the second reading to the third, after the CPU readings' start
        // and stop, so the counts span the publishing.
        if (perf) counters[' perf'] = (() => {
          let reads = 0;
          return () => (++reads === 2 ? perf.start() : reads === 3 ? perf.stop() : 0);
        })();
        if (WARMUP_SECONDS > 0) await scenarios.fanoutLatency(workers, { urls: stack.urls }, { subscribers: SUBSCRIBERS, rate: RATE, seconds: WARMUP_SECONDS });
        const before = stackCpuSeconds(stack);
        const r = await scenarios.fanoutLatency(workers, { urls: stack.urls }, { subscribers: SUBSCRIBERS, rate: RATE, seconds: SECONDS, counters });
        const whole = stackCpuSeconds(stack) - before;
        const { switches: switched = 0, ' perf': _perf, ...cpu } = r.during;
        const counted = perf && !PERF_RECORD ? await perf.read() : undefined;
        if (perf && PERF_RECORD) await perf.read();
        const publishing = Object.values(cpu).reduce((a, b) => a + b, 0);
        const run: Run = {
          stack: m.name,
          round,
          delivered: r.delivered,
          expected: r.expected,
          missing: r.missing,
          duplicates: r.duplicates,
          whole: cpuUsEach(whole, r.delivered),
          publishing: cpuUsEach(publishing, r.delivered),
          opening: cpuUsEach(Object.entries(r.opening).filter(([k]) => k !== 'switches' && k !== ' perf').reduce((a, [, v]) => a + v, 0), r.delivered),
          byProcess: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, cpuUsEach(v, r.delivered)])),
          switchesPerMessage: switched / Math.max(1, r.published),
          perMessage: counted ? Object.fromEntries(Object.entries(counted).map(([k, v]) => [k, { syscalls: v.syscalls / Math.max(1, r.published), switches: v.switches / Math.max(1, r.published) }])) : undefined,
          p99: r.latencyMs.p99,
        };
        runs.push(run);
        const parts = Object.entries(run.byProcess).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
        console.log(
          `round ${round} ${m.name.padEnd(12)} ${r.delivered} of ${r.expected} delivered, missing ${r.missing}, duplicates ${r.duplicates}, p99 ${run.p99} ms; CPU ms per 1,000 deliveries: whole ${run.whole.toFixed(2)}, connects ${run.opening.toFixed(2)}, publishing ${run.publishing.toFixed(2)} (${parts}), closes ${(run.whole - run.opening - run.publishing).toFixed(2)}; ${run.switchesPerMessage.toFixed(1)} context switches per message; load ${loadavg()[0]!.toFixed(2)}`,
        );
        if (run.perMessage) console.log(`  per message: ${Object.entries(run.perMessage).map(([k, v]) => `${k} ${v.syscalls.toFixed(1)} syscalls, ${v.switches.toFixed(2)} switches`).join('; ')}`);
      } finally {
        await stack.stop();
      }
    }
  }
} finally {
  await workers.stop();
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const of = (name: string) => runs.filter((r) => r.stack === name);
const ceiling = of('raw uWS');
console.log('\n| stack | CPU ms / 1,000 deliveries, whole scenario (median) | publishing alone (median) | publishing by process (median) | context switches per message (median) | ratio to raw uWS, whole (per round, median) | publishing (per round, median) | missing / duplicates |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const m of makers) {
  const rs = of(m.name);
  const ratio = (k: 'whole' | 'publishing') => median(rs.map((r) => r[k] / ceiling.find((c) => c.round === r.round)![k]));
  const procs = Object.keys(rs[0]?.byProcess ?? {}).map((k) => `${k} ${median(rs.map((r) => r.byProcess[k]!)).toFixed(2)}`).join(', ');
  console.log(
    `| ${m.name} | ${median(rs.map((r) => r.whole)).toFixed(2)} | ${median(rs.map((r) => r.publishing)).toFixed(2)} | ${procs} | ${median(rs.map((r) => r.switchesPerMessage)).toFixed(1)} | ${m.name === 'raw uWS' ? '1' : ratio('whole').toFixed(2)}× | ${m.name === 'raw uWS' ? '1' : ratio('publishing').toFixed(2)}× | ${rs.reduce((a, r) => a + r.missing, 0)} / ${rs.reduce((a, r) => a + r.duplicates, 0)} |`,
  );
}
