/**
 * `npm run bench`: herald beside what users deploy today, in one run on this machine, with the
 * load-test harness. Servers (and Redis) run on CPU 0, clients and the publisher on CPU 1.
 * Writes BENCHMARKS.md, bench/results.json and the charts under docs/.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { lineChart } from '../loadtest/harness/chart.js';
import * as scenarios from '../loadtest/harness/scenarios.js';
import { Workers } from '../loadtest/harness/workers.js';
import { CLIENT_CPU, ROOT, SERVER_CPU, ceilingStack, heraldStack, pinToClientCpu, rssBytes, stockStack, withCpu, type Stack } from './stacks.js';

const QUICK = process.env.BENCH_QUICK === '1';
/** Publish rates of the saturation sweep: 100 to 6,400 messages/s, about 20 % apart past 1,000. */
const SATURATION_RATES = [100, 200, 400, 600, 800, 1000, 1250, 1500, 1800, 2200, 2600, 3100, 3700, 4400, 5300, 6400];
const STACKS = {
  herald: 'herald (2 replicas + Redis, uWS transport)',
  heraldOne: 'herald (1 replica, no Redis, uWS transport)',
  heraldWs: 'herald (2 replicas + Redis, ws transport)',
};

async function measureStack(stack: Stack, workers: Workers) {
  const target = { urls: stack.urls };
  const latencyRates = QUICK ? [10, 100] : [10, 100, 1000];
  const latency = [];
  let cpuPer1000: number | undefined;
  for (const rate of latencyRates) {
    const { result, cpu } = await withCpu(stack, () => scenarios.fanoutLatency(workers, target, { subscribers: 1000, rate, seconds: QUICK ? 3 : 5 }));
    latency.push({ rate, deliveries: result.delivered, missing: result.missing, duplicates: result.duplicates, latencyMs: result.latencyMs, cpuSeconds: cpu });
    if (rate === 100) cpuPer1000 = (cpu / Math.max(1, result.delivered)) * 1000 * 1000; // ms of CPU per 1,000 deliveries
  }
  // Few, large rooms: each publish fans out 500-wide, so the HTTP publisher is not the limit.
  const saturation = await scenarios.throughput(workers, target, {
    rooms: 2,
    subscribersPerRoom: 500,
    rates: QUICK ? [100, 400] : SATURATION_RATES,
    secondsPerStep: QUICK ? 2 : 3,
    patience: 2,
    sampleEvery: 200,
  });
  const rssBefore = stack.servers.reduce((a, p) => a + rssBytes(p.pid), 0);
  const idle = await scenarios.connections(workers, { urls: stack.urls, rss: async () => stack.servers.reduce((a, p) => a + rssBytes(p.pid), 0) }, { count: QUICK ? 2000 : 10_000, holdSeconds: 3 });
  return { stack: stack.name, latency, saturation, idle, rssBefore, cpuMsPer1000Deliveries: cpuPer1000 };
}

/** The most idle connections one herald replica holds here, and where it stopped. */
async function capacity(workers: Workers) {
  const stack = await heraldStack('capacity', 'uws', 1);
  try {
    const target = QUICK ? 3000 : 19_500;
    const r = await scenarios.connections(workers, { urls: stack.urls, rss: async () => rssBytes(stack.servers[0]!.pid) }, { count: target, holdSeconds: 3 });
    return { ...r, fdLimit: Number(execFileSync('bash', ['-c', 'ulimit -Hn']).toString().trim()) };
  } finally {
    await stack.stop();
  }
}

/** Issue 7: Redis-to-gateway traffic per replica, classic against sharded, with 2, 3 and 4 replicas. */
async function shardedComparison(workers: Workers) {
  const rows = [];
  const rooms = Array.from({ length: 300 }, (_, i) => `bench-room-${i}`);
  for (const membersPerRoom of [1, 3]) {
    for (const replicas of QUICK ? [3] : [2, 3, 4]) {
      for (const mode of ['classic', 'sharded'] as const) {
        const stack = await heraldStack(`${mode}-${replicas}`, 'uws', replicas, { REDIS_MODE: mode });
        try {
          const received = async () =>
            Promise.all(
              stack.urls.map(async (u) => Number(/^herald_redis_messages_received_total (\d+)/m.exec(await (await fetch(`${u}/metrics`)).text())?.[1] ?? 0)),
            );
          // Connection k is in room k % 300, on a random replica (as behind a load balancer); each
          // worker gets its connections' rooms and replicas spelled out, one per connection.
          const total = rooms.length * membersPerRoom;
          const urls = Array.from({ length: total }, () => stack.urls[Math.floor(Math.random() * stack.urls.length)]!);
          const mine = (i: number) => Array.from({ length: total }, (_, k) => k).filter((k) => k % workers.size === i);
          await workers.all(
            (i) => ({
              cmd: 'open',
              urls: mine(i).map((k) => urls[k]!),
              rooms: mine(i).map((k) => rooms[k % rooms.length]!),
              count: mine(i).length,
              roomOffset: 0,
              localAddresses: ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'],
              track: 'count',
              sampleEvery: 100,
              concurrency: 100,
            }),
            'opened',
          );
          await workers.reports();
          const before = await received();
          const { result: pub, cpu } = await withCpu(stack, () => (async () => {
            const p = await (await import('../loadtest/harness/publisher.js')).publishAtRate({ urls: stack.urls }, rooms, 1000, QUICK ? 2 : 3);
            await delay(500);
            return p;
          })());
          const after = await received();
          const delivered = (await workers.reports()).reduce((a, r) => a + r.delivered, 0);
          const published = Object.values(pub.accepted).reduce((a, b) => a + b, 0);
          const perReplica = after.map((a, i) => (a - before[i]!) / published);
          rows.push({
            mode,
            replicas,
            membersPerRoom,
            published,
            delivered,
            redisMessagesPerReplicaPerPublish: perReplica.reduce((a, b) => a + b, 0) / perReplica.length,
            gatewayCpuUsPerDelivery: (cpu / Math.max(1, delivered)) * 1e6,
          });
          await workers.all(() => ({ cmd: 'close' }), 'closed');
        } finally {
          await stack.stop();
        }
      }
    }
  }
  return rows;
}

/** What `node --import tsx bench/profile.ts` showed; kept with the numbers it explains. */
const PROFILE_FINDINGS = `## Where herald falls short, and why (profile)

\`node --import tsx bench/profile.ts\` runs the saturation load (1,600 messages/s to 2 rooms × 500
subscribers, two replicas + Redis on one core) with one replica under \`--cpu-prof\`. Last run:
215,237 deliveries/s; of the profiled replica's CPU, 73.1 % was inside uWebSockets.js \`app.publish\`
as called by Socket.IO's uWS fast path (\`socket.io/dist/uws.js:67\`), 8.6 % in uWS's \`writeBuffer\`,
2.0 % in Socket.IO's per-broadcast scan of room members for long-polling clients
(\`in-memory-adapter.js:250\`), and herald's own code (HTTP handling, validation, metrics) under 1 %
in total.

So the cost is in the native publish. With the one server core saturated, that is about 4.6 µs of
server CPU per delivery for herald (1 s / 215k, two replicas and Redis sharing the core) against
1.3 µs for the raw-uWS ceiling at its best run (1 s / 790k, one process, no Redis).
One explanation was tested and is not supported: that the ceiling is faster because it publishes
inside uWS's own HTTP callback while herald publishes from a promise continuation. With the ceiling
made to publish from a continuation (\`CEILING_DEFER=1\` in bench/uws-ceiling.cjs), two runs each
gave 292k and 366k deliveries/s inside the callback against 732k and 366k deferred: no consistent
difference, the machine's variance dominates. Left to try: Socket.IO's per-broadcast member scan
(2 %), shorter message ids than UUIDs (fewer bytes per frame), and measuring on a machine where
server and clients do not share two cores. Measured separately on the same load, one herald replica without Redis reached about 250k
deliveries/s against 290k–375k for the ceiling in the same run; run-to-run variation on this
machine is large (the ceiling's own saturation point ranged from 290k to 790k across runs).
`;

const f = (n: number | undefined, digits = 0) => (n === undefined || !Number.isFinite(n) ? 'n/a' : n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

function markdown(results: Awaited<ReturnType<typeof measureStack>>[], cap: Awaited<ReturnType<typeof capacity>>, sharded: Awaited<ReturnType<typeof shardedComparison>>, machine: string, seconds: number): string {
  const stock = results.find((r) => r.stack.startsWith('stock'))!;
  const ceiling = results.find((r) => r.stack.startsWith('raw'))!;
  const heraldUws = results.find((r) => r.stack === STACKS.herald)!;
  const heraldOne = results.find((r) => r.stack === STACKS.heraldOne)!;
  const max = (r: (typeof results)[number]) => r.saturation.maxDeliveriesPerSecond;
  const latencyAt = (r: (typeof results)[number], rate: number) => r.latency.find((x) => x.rate === rate)?.latencyMs;
  const lines = [
    '# Benchmarks',
    '',
    `Command: \`npm run bench\` (${seconds.toFixed(0)} s). Machine: ${machine}. Servers and Redis pinned to CPU ${SERVER_CPU}, clients and publisher to CPU ${CLIENT_CPU} (taskset), so every stack gets the same single core.`,
    `Generated ${new Date().toISOString()} by bench/run.ts; raw numbers in bench/results.json.`,
    '',
    '## Stacks side by side',
    '',
    '| stack | deliveries/s at saturation | p50 / p95 / p99 ms at 10 msg/s | at 100 msg/s | at 1,000 msg/s | RSS per idle connection (10k) | CPU ms per 1,000 deliveries |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...results.map((r) => {
      const at = (rate: number) => {
        const l = r.latency.find((x) => x.rate === rate);
        return l ? `${l.latencyMs.p50} / ${l.latencyMs.p95} / ${l.latencyMs.p99}${l.missing ? ` (${f(l.missing)} missing)` : ''}` : 'n/a';
      };
      return `| ${r.stack} | ${f(max(r))} | ${at(10)} | ${at(100)} | ${at(1000)} | ${f(r.idle.bytesPerConnection)} B | ${f(r.cpuMsPer1000Deliveries, 2)} |`;
    }),
    '',
    'Latency is end to end: from the publisher\'s HTTP call to arrival at the client, 1,000 subscribers in one room (so 100 msg/s is 100,000 deliveries/s). Saturation: 2 rooms × 500 subscribers, publish rates from 100/s up, about 20 % apart past 1,000/s; a step is saturated when less than 90 % of what was published was delivered, or the publisher (256 requests in flight) got less than 90 % of the rate it asked for because the server answered slowly. The sweep stops after two saturated steps in a row; "deliveries/s at saturation" is the most at a step the stack kept up with.',
    '',
    '## Against the targets',
    '',
    `| target | measured | met |`,
    `| --- | --- | --- |`,
    `| herald (uWS) ≥ 8× the stock cluster's deliveries/s | ${f(max(heraldUws))} vs ${f(max(stock))}: ${f(max(heraldUws) / max(stock), 1)}× | ${max(heraldUws) >= 8 * max(stock) ? 'yes' : 'no'} |`,
    `| herald (uWS) ≥ 80 % of raw uWS | 2 replicas + Redis on the one server core: ${f((max(heraldUws) / max(ceiling)) * 100)} %; 1 replica without Redis (the same single process as raw uWS): ${f((max(heraldOne) / max(ceiling)) * 100)} % | ${max(heraldUws) >= 0.8 * max(ceiling) ? 'yes' : 'no'} (2 replicas); ${max(heraldOne) >= 0.8 * max(ceiling) ? 'yes' : 'no'} (1 replica) |`,
    `| p99 ≤ 50 ms at 100k deliveries/s (100 msg/s to 1,000 subscribers) | ${latencyAt(heraldUws, 100)?.p99 ?? 'n/a'} ms | ${(latencyAt(heraldUws, 100)?.p99 ?? Infinity) <= 50 ? 'yes' : 'no'} |`,
    `| ≤ 8 KB RSS per idle connection | ${f(heraldUws.idle.bytesPerConnection)} B | ${(heraldUws.idle.bytesPerConnection ?? Infinity) <= 8192 ? 'yes' : 'no'} |`,
    `| 100k idle connections on one replica | ${f(cap.connected)} held (${f(cap.bytesPerConnection)} B each); stopped by the per-process file-descriptor hard limit of ${f(cap.fdLimit)}, which cannot be raised here (setrlimit: Operation not permitted) | no (limit of this machine) |`,
    '',
    '## Saturation steps',
    '',
    'Each step: publish rate asked → deliveries/s (p99 ms); ✗ marks a saturated step, with the publish rate the server let the publisher reach.',
    '',
    '| stack | steps |',
    '| --- | --- |',
    ...results.map((r) => `| ${r.stack} | ${r.saturation.steps.map((s) => `${f(s.rate)} → ${f(s.deliveriesPerSecond)} (${s.latencyMs.p99})${s.saturated ? ` ✗ ${f(s.achievedPublishRate)}/s` : ''}`).join('; ')} |`),
    '',
    '![deliveries per second against publish rate](docs/bench-throughput.svg)',
    '',
    '![p99 latency against publish rate](docs/bench-latency.svg)',
    '',
    '## Classic against sharded adapter (300 rooms, 1,000 messages/s spread over them)',
    '',
    'Redis-to-gateway messages per replica per published message: the classic adapter delivers every broadcast to every replica; the sharded one only to replicas with a member in the room. Clients land on random replicas, as behind a load balancer.',
    '',
    '| members per room | replicas | classic: Redis msgs per replica per publish | sharded | sharded / classic | gateway CPU µs per delivery, classic / sharded |',
    '| --- | --- | --- | --- | --- | --- |',
    ...[1, 3].flatMap((m) =>
      [...new Set(sharded.filter((r) => r.membersPerRoom === m).map((r) => r.replicas))].map((n) => {
        const c = sharded.find((r) => r.membersPerRoom === m && r.replicas === n && r.mode === 'classic')!;
        const s = sharded.find((r) => r.membersPerRoom === m && r.replicas === n && r.mode === 'sharded')!;
        return `| ${m} | ${n} | ${f(c.redisMessagesPerReplicaPerPublish, 2)} | ${f(s.redisMessagesPerReplicaPerPublish, 2)} | ${f(s.redisMessagesPerReplicaPerPublish / c.redisMessagesPerReplicaPerPublish, 2)} | ${f(c.gatewayCpuUsPerDelivery, 1)} / ${f(s.gatewayCpuUsPerDelivery, 1)} |`;
      }),
    ),
    '',
    'With one member per room a replica hears 1/N of the rooms; with m members placed at random, 1 − (1 − 1/N)^m of them (3 members, 3 replicas: 0.70).',
    'Deliveries/s at saturation was not measured for this comparison: with 300 rooms of 1–3 members every publish fans out to 1–3 clients, so the HTTP publisher, not the gateways, saturates first.',
    '',
    PROFILE_FINDINGS,
  ];
  return lines.join('\n');
}

async function main() {
  pinToClientCpu();
  const startedAt = Date.now();
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${execFileSync('bash', ['-c', '. /etc/os-release && echo $PRETTY_NAME']).toString().trim()}, Node ${process.version}, Redis ${/v=(\S+)/.exec(execFileSync('redis-server', ['--version']).toString())?.[1]}`;
  const workers = await Workers.start(2, { cpus: CLIENT_CPU });
  const results = [];
  try {
    for (const make of [
      () => heraldStack(STACKS.herald, 'uws', 2),
      () => heraldStack(STACKS.heraldOne, 'uws', 1, { REDIS_URL: '' }),
      () => heraldStack(STACKS.heraldWs, 'node', 2),
      stockStack,
      ceilingStack,
    ]) {
      const stack = await make();
      console.log(`# bench: ${stack.name}`);
      try {
        results.push(await measureStack(stack, workers));
      } finally {
        await stack.stop();
      }
      console.log(JSON.stringify(results.at(-1)));
    }
    console.log('# bench: capacity of one replica');
    const cap = await capacity(workers);
    console.log(JSON.stringify(cap));
    console.log('# bench: classic against sharded');
    const sharded = await shardedComparison(workers);
    console.log(JSON.stringify(sharded));
    const seconds = (Date.now() - startedAt) / 1000;
    writeFileSync(join(ROOT, 'bench/results.json'), JSON.stringify({ machine, results, capacity: cap, sharded }, null, 2));
    writeFileSync(
      join(ROOT, 'docs/bench-throughput.svg'),
      lineChart({ title: 'Deliveries/s against publish rate (2 rooms × 500 subscribers)', xLabel: 'publish rate (messages/s)', yLabel: 'deliveries/s', series: results.map((r) => ({ name: r.stack, points: r.saturation.steps.map((s) => [s.rate, s.deliveriesPerSecond] as [number, number]) })), width: 760 }),
    );
    writeFileSync(
      join(ROOT, 'docs/bench-latency.svg'),
      lineChart({ title: 'p99 latency against publish rate', xLabel: 'publish rate (messages/s)', yLabel: 'p99 ms', series: results.map((r) => ({ name: r.stack, points: r.saturation.steps.map((s) => [s.rate, s.latencyMs.p99] as [number, number]) })), width: 760 }),
    );
    writeFileSync(join(ROOT, 'BENCHMARKS.md'), markdown(results, cap, sharded, machine, seconds));
    console.log(`# bench: done in ${seconds.toFixed(0)} s; wrote BENCHMARKS.md`);
  } finally {
    await workers.stop();
  }
}

await main();
