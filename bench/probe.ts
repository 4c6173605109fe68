/**
 * `node --import tsx bench/probe.ts [stack ...]`: a finer saturation sweep than `npm run bench`,
 * for finding where a stack saturates and which core is the limit. For each publish rate it prints
 * deliveries/s, the share delivered, p99, and the CPU the servers (CPU 0) and the clients and
 * publisher (CPU 1) used per second. Stacks: herald-uws, herald-uws-1 (one replica, no Redis),
 * herald-uws-1-redis (one replica with Redis),
 * herald-ws, stock, ceiling, soketi (2 replicas + Redis), soketi-1 (one process). RATES=comma list overrides the rates; STEP_SECONDS the step length;
 * FANOUT the subscribers per room (default 500; with a few, the server CPU per message printed is the
 * per-message cost, as in BENCHMARKS.md); IN_FLIGHT the publisher's window (default 64).
 * LATENCY=1 runs the benchmark's fan-out latency scenario instead (1,000 subscribers in one room,
 * RATES default 10,100, STEP_SECONDS default 5), REPEAT=n times per stack, for comparing settings
 * such as `BROADCAST_BATCH_MS=0` (passed to herald's replicas, see bench/stacks.ts).
 */
import * as scenarios from '../loadtest/harness/scenarios.js';
import { Workers } from '../loadtest/harness/workers.js';
import { CLIENT_CPU, cpuSeconds, cpuUsEach, pinToClientCpu, STACKS, stackCpuSeconds, withCpu, type Stack } from './stacks.js';

pinToClientCpu();

const names = process.argv.slice(2).length ? process.argv.slice(2) : ['herald-uws', 'ceiling'];
for (const n of names) if (!STACKS[n]) throw new Error(`unknown stack ${n}; known: ${Object.keys(STACKS).join(', ')}`);
const LATENCY = process.env.LATENCY === '1';
const FANOUT = Number(process.env.FANOUT ?? 500);
const rates = (process.env.RATES ?? (LATENCY ? '10,100' : '400,600,800,1000,1200,1400,1600,2000')).split(',').map(Number);
// WORKERS=n: client processes (default 2, as in npm run bench), all on the client CPU.
const workers = await Workers.start(Number(process.env.WORKERS ?? 2), { cpus: CLIENT_CPU });
const self = process.pid;

async function latency(name: string, stack: Stack) {
  const seconds = Number(process.env.STEP_SECONDS ?? 5);
  for (const rate of rates) {
    const { result: r, cpu } = await withCpu(stack, () => scenarios.fanoutLatency(workers, { urls: stack.urls, pusher: stack.pusher }, { subscribers: 1000, rate, seconds }));
    const l = r.latencyMs;
    console.log(
      `${name.padEnd(13)} rate ${String(rate).padStart(5)}: p50/p95/p99/max ${l.p50}/${l.p95}/${l.p99}/${l.max} ms, ${r.delivered} of ${r.expected} delivered, server CPU ms per 1,000 deliveries ${cpuUsEach(cpu, r.delivered).toFixed(2)}`,
    );
  }
}

try {
  for (const name of names.flatMap((n) => Array.from({ length: Number(process.env.REPEAT ?? 1) }, () => n))) {
    const stack = await STACKS[name]!();
    try {
      if (LATENCY) {
        await latency(name, stack);
        continue;
      }
      const r = await scenarios.throughput(workers, { urls: stack.urls, pusher: stack.pusher }, {
        rooms: 2,
        subscribersPerRoom: FANOUT,
        rates,
        secondsPerStep: Number(process.env.STEP_SECONDS ?? 3),
        sampleEvery: 200,
        patience: Infinity,
        inFlight: Number(process.env.IN_FLIGHT ?? 64),
        counters: {
          server: () => stackCpuSeconds(stack),
          client: () => [...workers.pids, self].reduce((a, pid) => a + cpuSeconds(pid), 0),
        },
      });
      for (const s of r.steps) {
        console.log(
          `${name.padEnd(13)} rate ${String(s.rate).padStart(5)} (achieved ${String(s.achievedPublishRate).padStart(5)}): ${String(s.deliveriesPerSecond).padStart(7)} deliveries/s, ${(s.deliveredShare * 100).toFixed(0).padStart(3)} % delivered,${s.saturated ? ' SATURATED,' : ''} p99 ${String(s.latencyMs.p99).padStart(5)} ms, CPU/s server ${(s.counters.server! / s.seconds).toFixed(2)} client ${(s.counters.client! / s.seconds).toFixed(2)}, server CPU µs per message ${cpuUsEach(s.counters.server!, s.published).toFixed(0)}`,
        );
      }
    } finally {
      await stack.stop();
    }
  }
} finally {
  await workers.stop();
}
