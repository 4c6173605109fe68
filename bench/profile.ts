/**
 * `node --import tsx bench/profile.ts`: where a herald replica spends its CPU under load.
 * Two replicas + Redis on CPU 0 (as in the benchmark), one of them under --cpu-prof, the harness on
 * CPU 1 publishing RATES messages/s (a ramp, default 1,000 then 1,500: below the knee) to 2 rooms × 500 subscribers;
 * prints how the server CPU split between the processes and the functions with the most self time.
 * FANOUT=n: subscribers per room (default 500); with a few (4, as the per-message cost in
 * BENCHMARKS.md) the profile shows what each message costs apart from its deliveries.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as scenarios from '../loadtest/harness/scenarios.js';
import { Workers } from '../loadtest/harness/workers.js';
import { freePort } from '../test/helpers/ports.js';
import { CLIENT_CPU, cpuSeconds, HERALD_ARGS, HERALD_ENV, pinToClientCpu, redis, start } from './stacks.js';

pinToClientCpu();
/** Publish rates, one step each (a ramp, so the profile is not of a cold start); the last one is reported. */
const RATES = (process.env.RATES ?? '1000,1500').split(',').map(Number);

const dir = mkdtempSync(join(tmpdir(), 'herald-profile-'));
const r = await redis();
const env = { ...HERALD_ENV, REDIS_URL: r.url, HOST: '127.0.0.1' };
// SINGLE=1: one replica without Redis instead (herald's own cost, beside the raw uWS ceiling).
const single = process.env.SINGLE === '1';
const [pa, pb] = [await freePort(), await freePort()];
const a = await start(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${dir}`, ...HERALD_ARGS], { ...env, ...(single ? { REDIS_URL: '' } : {}), PORT: String(pa), REPLICA_ID: 'profiled' }, /"listening"/);
const b = single ? undefined : await start(process.execPath, HERALD_ARGS, { ...env, PORT: String(pb), REPLICA_ID: 'other' }, /"listening"/);
const workers = await Workers.start(2, { cpus: CLIENT_CPU });
const procs = { profiled: a.pid, ...(b ? { other: b.pid, redis: r.proc.pid } : {}) };
const result = await scenarios.throughput(workers, { urls: [`http://127.0.0.1:${pa}`, ...(b ? [`http://127.0.0.1:${pb}`] : [])] }, {
  rooms: 2,
  subscribersPerRoom: Number(process.env.FANOUT ?? 500),
  rates: RATES,
  patience: Infinity,
  secondsPerStep: 6,
  sampleEvery: 200,
  counters: Object.fromEntries(Object.entries(procs).map(([k, pid]) => [k, () => cpuSeconds(pid)])),
});
await workers.stop();
// SIGTERM: the profiled replica drains and exits, which is when V8 writes the profile.
await Promise.all([a.stop('SIGTERM'), b?.stop(), r.proc.stop()]);
rmSync(r.dir, { recursive: true, force: true });

const profile = JSON.parse(readFileSync(join(dir, readdirSync(dir)[0]!), 'utf8')) as {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
};
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const n = byId.get(id)!;
  const where = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/.*node_modules\//, '').replace(/.*\/dist\//, 'dist/')}:${n.callFrame.lineNumber}`;
  const us = profile.timeDeltas[i] ?? 0;
  total += us;
  self.set(where, (self.get(where) ?? 0) + us);
});
const step = result.steps.at(-1)!;
console.log(`load: ${step.rate} messages/s → ${step.deliveriesPerSecond} deliveries/s, p99 ${step.latencyMs.p99} ms`);
console.log(`server CPU per second: ${Object.entries(step.counters).map(([k, v]) => `${k} ${(v / step.seconds).toFixed(2)}`).join(', ')}`);
console.log(`profiled replica: ${(total / 1e6).toFixed(1)} s of samples; self time:`);
for (const [where, us] of [...self].sort((x, y) => y[1] - x[1]).slice(0, 25)) console.log(`${((us / total) * 100).toFixed(1).padStart(5)} %  ${where}`);
