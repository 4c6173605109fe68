/**
 * `npm run bench`: herald beside what users deploy today, in one run on this machine, with the
 * load-test harness. Servers (and Redis) run on CPU 0, clients and the publisher on CPU 1.
 * Writes BENCHMARKS.md, bench/results.json and the charts under docs/.
 *
 *   node --import tsx bench/run.ts --report             # BENCHMARKS.md and the charts again from bench/results.json
 *   node --import tsx bench/run.ts --step sse --record  # the SSE step alone (bench/sse.ts), kept in results.json
 *   node --import tsx bench/deltas.ts --record          # the delta step alone (likewise bench/jitter.ts, bench/journal-memory.ts)
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { lineChart } from '../loadtest/harness/chart.js';
import { analysis } from './analysis.js';
import * as scenarios from '../loadtest/harness/scenarios.js';
import { CLIENT_BOUND, cpuBusySeconds, processCpuSeconds, Workers } from '../loadtest/harness/workers.js';
import { JOURNAL_DEFAULTS, journalMemory, journalTable, type JournalRow, type SeparateJournalRun } from './journal-memory.js';
import { COMPRESSION_DEFAULTS, compressionComparison, type CompressionRow } from './compression.js';
import { CONFLATION_DEFAULTS, conflationBench, type ConflationRow } from './conflation.js';
import { DELTA_DEFAULTS, deltaBench, deltaSummary, type DeltaRun } from './deltas.js';
import { jitterComparison, JITTER_DEFAULTS, sourceMentions, srcCommit, type JitterRow, type SeparateJitterRun } from './jitter.js';
import { CLIENT_CPU, ROOT, SERVER_CPU, ceilingStack, cpuUsEach, heraldStack, pinToClientCpu, rssBytes, soketiStack, stackCpuSeconds, stockStack, withCpu, type Stack } from './stacks.js';

const QUICK = process.env.BENCH_QUICK === '1';
/** Publish rates of the saturation sweep: 100 to 9,200 messages/s, about 20 % apart past 1,000. */
const SATURATION_RATES = [100, 200, 400, 600, 800, 1000, 1250, 1500, 1800, 2200, 2600, 3100, 3700, 4400, 5300, 6400, 7700, 9200];
/** Subscribers per room in the saturation sweep (2 rooms). */
const SATURATION_FANOUT = 500;
const STACKS = {
  herald: 'herald (2 replicas + Redis, uWS transport)',
  heraldOne: 'herald (1 replica, no Redis, uWS transport)',
  heraldOneRedis: 'herald (1 replica + Redis, uWS transport)',
  heraldWs: 'herald (2 replicas + Redis, ws transport)',
  soketi: 'soketi 1.6.1 (2 replicas + Redis, uWS)',
  soketiOne: 'soketi 1.6.1 (1 process, no Redis, uWS)',
};

async function measureStack(stack: Stack, workers: Workers) {
  const target = { urls: stack.urls, pusher: stack.pusher };
  // Idle connections first, on the fresh processes: measured after the load runs, the growth would
  // land in heap the load had already grown (one run here showed a negative cost per connection).
  const rssBefore = stack.servers.reduce((a, p) => a + rssBytes(p.pid), 0);
  const idle = await scenarios.connections(workers, { ...target, rss: async () => stack.servers.reduce((a, p) => a + rssBytes(p.pid), 0) }, { count: QUICK ? 2000 : 10_000, holdSeconds: 3 });
  const latencyRates = QUICK ? [10, 100] : [10, 100, 1000];
  const latency = [];
  let cpuPer1000: number | undefined;
  for (const rate of latencyRates) {
    const { result, cpu } = await withCpu(stack, () => scenarios.fanoutLatency(workers, target, { subscribers: 1000, rate, seconds: QUICK ? 3 : 5 }));
    latency.push({ rate, deliveries: result.delivered, expected: result.expected, missing: result.missing, duplicates: result.duplicates, latencyMs: result.latencyMs, cpuSeconds: cpu, client: result.client });
    if (rate === 100) cpuPer1000 = cpuUsEach(cpu, result.delivered); // ms per 1,000 deliveries
  }
  // Few, large rooms: each publish fans out 500-wide, so the HTTP publisher is not the limit.
  const saturation = await scenarios.throughput(workers, target, {
    rooms: 2,
    subscribersPerRoom: SATURATION_FANOUT,
    rates: QUICK ? [100, 400] : SATURATION_RATES,
    secondsPerStep: QUICK ? 2 : 3,
    patience: 2,
    sampleEvery: 200,
  });
  return { stack: stack.name, latency, saturation, idle, rssBefore, cpuMsPer1000Deliveries: cpuPer1000, perMessage: await perMessageCost(stack, workers) };
}

/** Per-message publishing rate and fan-out of the per-message cost measurement. */
const PER_MESSAGE = { rate: 5000, subscribersPerRoom: 4 };

/**
 * What a stack spends on each message apart from its deliveries: server CPU per published message
 * at 5,000 messages/s to 2 rooms × 4 subscribers, where fan-out costs little beside the HTTP
 * request, the bus and each process's turn. With 500-wide rooms this is what the sendto batching
 * cannot amortize, and it sets how far below raw uWS a stack saturates (see `predictedRatio`).
 */
async function perMessageCost(stack: Stack, workers: Workers) {
  const r = await scenarios.throughput(workers, { urls: stack.urls, pusher: stack.pusher }, {
    rooms: 2,
    subscribersPerRoom: PER_MESSAGE.subscribersPerRoom,
    rates: [PER_MESSAGE.rate],
    secondsPerStep: QUICK ? 2 : 6,
    counters: { cpu: () => stackCpuSeconds(stack) },
  });
  const step = r.steps[0]!;
  return { rate: step.rate, achievedPublishRate: step.achievedPublishRate, published: step.published, saturated: step.saturated, cpuUsPerMessage: cpuUsEach(step.counters.cpu!, step.published), client: step.client };
}

/**
 * The share of raw uWS's deliveries/s a stack can reach with 500-wide rooms, if each delivery costs
 * what it costs raw uWS (its whole core over its deliveries/s at saturation) and each message costs
 * `extraUs` more: deliveries/s D satisfy D × c + (D / fan-out) × extra = 1 core.
 */
const predictedRatio = (ceilingDeliveriesPerSecond: number, extraUs: number): number => 1 / (1 + ((extraUs / 1e6) * ceilingDeliveriesPerSecond) / SATURATION_FANOUT);

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
            gatewayCpuUsPerDelivery: cpuUsEach(cpu, delivered),
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

const f = (n: number | undefined, digits = 0) => (n === undefined || !Number.isFinite(n) ? 'n/a' : n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

type Result = Run['results'][number];
type Step = Result['saturation']['steps'][number];

/** A step's client-core share as text, flagged when the client was the limit (absent in older results). */
const clientMark = (c: Step['client'] | undefined): string =>
  !c ? '' : `${c.clientBound ? ' ⚑' : ''} (client ${f(c.utilisation * 100)} %${c.coreBusy !== undefined ? `, core ${f(Math.min(1, c.coreBusy) * 100)} %` : ''})`;

/**
 * Whether a stack's counted ceiling is only a lower bound because the client was the limit: the
 * stack kept up with a higher step, but that step was client-bound.
 */
const clientLimited = (r: Result): boolean => r.saturation.steps.some((s) => !s.saturated && s.client?.clientBound && s.deliveriesPerSecond > r.saturation.maxDeliveriesPerSecond);

/** The most deliveries/s the harness saw at a step the stack kept up with, client-bound steps included. */
const anyClientMax = (r: Result): number => r.saturation.maxDeliveriesPerSecondAnyClient ?? r.saturation.maxDeliveriesPerSecond;

/** herald against soketi, figure by figure: the rows of the ratio table. */
function soketiRatios(results: Result[]): string[] {
  const pairs = [
    ['2 replicas + Redis', results.find((r) => r.stack === STACKS.herald), results.find((r) => r.stack === STACKS.soketi)],
    ['1 process, no Redis', results.find((r) => r.stack === STACKS.heraldOne), results.find((r) => r.stack === STACKS.soketiOne)],
  ] as const;
  const rows: string[] = [];
  const line = (figure: string, h: number | undefined, k: number | undefined, better: 'higher' | 'lower', unit = '') =>
    `| ${figure} | ${f(h, unit === 'ms' ? 0 : unit === 'µs' || unit === 'ms/1k' ? 2 : 0)} | ${f(k, unit === 'ms' ? 0 : unit === 'µs' || unit === 'ms/1k' ? 2 : 0)} | ${h !== undefined && k !== undefined && k !== 0 ? `${f(h / k, 2)}× (${better} is better)` : 'n/a'} |`;
  for (const [label, h, k] of pairs) {
    if (!h || !k) continue;
    const p99 = (r: Result, rate: number) => r.latency.find((x) => x.rate === rate)?.latencyMs.p99;
    rows.push(
      `| **${label}** | herald | soketi | herald / soketi |`,
      line('deliveries/s at saturation (steps not client-bound)', h.saturation.maxDeliveriesPerSecond || undefined, k.saturation.maxDeliveriesPerSecond || undefined, 'higher'),
      line('deliveries/s at saturation (any step the stack kept up with)', anyClientMax(h), anyClientMax(k), 'higher'),
      ...h.latency.map((l) => line(`p99 ms at ${f(l.rate)} msg/s × 1,000 subscribers`, l.latencyMs.p99, p99(k, l.rate), 'lower', 'ms')),
      line('RSS per idle connection, bytes (10k)', h.idle.bytesPerConnection, k.idle.bytesPerConnection, 'lower'),
      line('CPU ms per 1,000 deliveries (100 msg/s × 1,000)', h.cpuMsPer1000Deliveries, k.cpuMsPer1000Deliveries, 'lower', 'ms/1k'),
      line(`CPU µs per message (${f(PER_MESSAGE.rate)} msg/s asked, 2 rooms × ${PER_MESSAGE.subscribersPerRoom})`, h.perMessage.cpuUsPerMessage, k.perMessage.cpuUsPerMessage, 'lower'),
    );
  }
  return rows;
}

/** The jitter table (absent from results written before it existed). */
function jitterSection(rows: JitterRow[] | undefined, heraldRecovery: boolean | undefined, separate?: SeparateJitterRun): string[] {
  if (!rows || rows.length === 0) return [];
  const table = (rs: JitterRow[]) => [
    '| stack | published | connections reset | reconnects | recovered (`socket.recovered`) | delivered | duplicates | connected at the end |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rs.map((r) => `| ${r.stack} | ${f(r.published)}${r.publishFailures ? ` (${f(r.publishFailures)} failed)` : ''} | ${f(r.connectionsReset)} | ${f(r.reconnects)} | ${f(r.recovered)} | ${f(r.deliveredShare * 100, 1)} % (${f(r.unique)} of ${f(r.expected)}) | ${f(r.duplicates)} | ${f(r.connectedAtEnd)} / ${f(r.clients)} |`),
  ];
  const later = separate
    ? [
        `A later run of this scenario alone (\`node --import tsx bench/jitter.ts --record\`, ${separate.generatedAt}, herald's src/ as of commit ${separate.commit}, whose herald ${separate.heraldRecovery ? 'has' : 'does not have'} built-in connection recovery, \`CONNECTION_RECOVERY_SECONDS\` at its default):`,
        '',
        ...table(separate.rows),
        '',
      ]
    : [];
  const r0 = rows[0]!;
  return [
    `## Jitter: connections reset every ~${f(r0.dropEveryMs / 1000, 0)} s while a publisher runs (${f(r0.clients)} plain socket.io-client clients, ${f(r0.rate)} msg/s for ${f(r0.seconds)} s)`,
    '',
    analysis('jitter-intro', { dropFromMs: f(r0.dropEveryMs * 0.8), dropToMs: f(r0.dropEveryMs * 1.2) }),
    '',
    ...table(rows),
    '',
    ...rows.filter((r) => r.recovered === 0).flatMap((r) => [`${r.stack}: no reconnect came back with \`socket.recovered === true\`, so each client lost what was published while it was away (every reset is followed by socket.io-client's 0.5–1.5 s reconnection delay and a new handshake, out of a ~2 s cycle).${r.stack.startsWith('herald') ? (heraldRecovery === false ? ' The herald build measured had no built-in connection recovery (issue 18, `CONNECTION_RECOVERY_SECONDS`, was not in its src/); the scenario runs unchanged once it has.' : '') : ' Socket.IO\'s connection state recovery needs an adapter that can persist sessions; the Redis pub/sub adapter cannot.'}`, '']),
    ...later,
  ];
}

function markdown({ results, capacity: cap, sharded, compression, jitter, jitterHeraldRecovery, jitterSeparate, journal, conflation, conflationSeparate, journalSeparate, deltas, deltasSeparate, sse, sseSeparate, machine, seconds, generatedAt, shared, commit }: Run): string {
  const stock = results.find((r) => r.stack.startsWith('stock'))!;
  const ceiling = results.find((r) => r.stack.startsWith('raw'))!;
  const heraldUws = results.find((r) => r.stack === STACKS.herald)!;
  const heraldOne = results.find((r) => r.stack === STACKS.heraldOne)!;
  const heraldOneRedis = results.find((r) => r.stack === STACKS.heraldOneRedis)!;
  const max = (r: (typeof results)[number]) => r.saturation.maxDeliveriesPerSecond;
  const ratio = (r: (typeof results)[number]) => `${f((max(r) / max(ceiling)) * 100)} %`;
  // Per-message cost above raw uWS's, and the share of raw uWS that cost leaves room for.
  const extraUs = (r: (typeof results)[number]) => r.perMessage.cpuUsPerMessage - ceiling.perMessage.cpuUsPerMessage;
  // The cost model uses the most raw uWS was seen to deliver, client-bound steps included: the
  // counted ceiling can be the client's, and the model needs the server's cost per delivery.
  const modelMax = anyClientMax(ceiling);
  const predicted = (r: (typeof results)[number]) => `${f(predictedRatio(modelMax, extraUs(r)) * 100)} %`;
  const budgetUs = ((1 / 0.8 - 1) * SATURATION_FANOUT * 1e6) / modelMax;
  const undecided = (...rs: Result[]) => (rs.some(clientLimited) ? ' (not decided here: the client core was the limit first, see ⚑)' : '');
  const noneKept = (r: Result) => (r.saturation.steps.every((x) => x.saturated) ? ' (saturated from the first step)' : '');
  const modelRatio = (r: Result) => `${f((anyClientMax(r) / modelMax) * 100)} %`;
  const latencyAt = (r: (typeof results)[number], rate: number) => r.latency.find((x) => x.rate === rate)?.latencyMs;
  const lines = [
    '# Benchmarks',
    '',
    `Command: \`npm run bench\` (${seconds.toFixed(0)} s). Machine: ${machine}. Servers and Redis pinned to CPU ${SERVER_CPU}, clients and publisher to CPU ${CLIENT_CPU} (taskset), so every stack gets the same single core.${shared ? ` The machine was shared with other sessions' tests during the run: ${shared}.` : ''}`,
    `Generated ${generatedAt} by bench/run.ts${commit ? `, herald's src/ as of commit ${commit}` : ''}; raw numbers in bench/results.json (\`node --import tsx bench/run.ts --report\` rewrites this file from them).`,
    '',
    '## Stacks side by side',
    '',
    `| stack | deliveries/s at saturation | p50 / p95 / p99 ms at 10 msg/s | at 100 msg/s | at 1,000 msg/s | missing / duplicates (latency runs) | RSS per idle connection (10k, fresh processes) | CPU ms per 1,000 deliveries (at 100 msg/s) | CPU µs per message (${f(PER_MESSAGE.rate)} msg/s to 2 rooms × ${PER_MESSAGE.subscribersPerRoom}) |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...results.map((r) => {
      const at = (rate: number) => {
        const l = r.latency.find((x) => x.rate === rate);
        return l ? `${l.latencyMs.p50} / ${l.latencyMs.p95} / ${l.latencyMs.p99}${l.client?.clientBound ? clientMark(l.client) : ''}` : 'n/a';
      };
      const open = !r.saturation.steps.at(-1)?.saturated; // kept up with the last step: a lower bound
      const owed = r.latency.reduce((a, l) => a + (l.expected ?? 0), 0);
      const correctness = `${f(r.latency.reduce((a, l) => a + l.missing, 0))} / ${f(r.latency.reduce((a, l) => a + l.duplicates, 0))}${owed ? ` of ${f(owed)}` : ''}`;
      const sat = max(r) ? `${open || clientLimited(r) ? '≥ ' : ''}${f(max(r))}` : 'n/a (every step client-bound)';
      const satAny = anyClientMax(r) > max(r) ? ` (⚑ ${f(anyClientMax(r))} at a client-bound step)` : '';
      const pm = r.perMessage;
      const perMessage = `${f(pm.cpuUsPerMessage)}${pm.saturated ? ` (saturated: ${f(pm.achievedPublishRate)}/s reached)` : ''}`;
      return `| ${r.stack} | ${sat}${satAny}${noneKept(r)} | ${at(10)} | ${at(100)} | ${at(1000)} | ${correctness} | ${f(r.idle.bytesPerConnection)} B | ${f(r.cpuMsPer1000Deliveries, 2)} | ${perMessage} |`;
    }),
    '',
    analysis('stacks-notes', { clientBound: f(CLIENT_BOUND * 100), clientCpu: String(CLIENT_CPU) }),
    '',
    '## Against the targets',
    '',
    `| target | measured | met |`,
    `| --- | --- | --- |`,
    `| herald (uWS) ≥ 8× the stock cluster's deliveries/s | ${clientLimited(heraldUws) ? '≥ ' : ''}${f(max(heraldUws))} vs ${f(max(stock))}: ${f(max(heraldUws) / max(stock), 1)}×; at any step kept up with, client-bound ones included: ${f(anyClientMax(heraldUws))} vs ${f(anyClientMax(stock))}, ${f(anyClientMax(heraldUws) / anyClientMax(stock), 1)}× | ${max(heraldUws) >= 8 * max(stock) ? 'yes' : `no${undecided(heraldUws)}`} |`,
    `| herald (uWS) ≥ 80 % of raw uWS | 2 replicas + Redis on the one server core: ${ratio(heraldUws)} (predicted from per-message cost: ${predicted(heraldUws)}); 1 replica + Redis: ${ratio(heraldOneRedis)} (${predicted(heraldOneRedis)}); 1 replica without Redis (the same single process as raw uWS): ${ratio(heraldOne)} (${predicted(heraldOne)}); at any step kept up with, client-bound ones included: ${modelRatio(heraldUws)}, ${modelRatio(heraldOneRedis)} and ${modelRatio(heraldOne)} | ${undecided(heraldUws, heraldOne, ceiling) ? `not decided: a counted ceiling here is the client's (raw uWS's steps from ${f(ceiling.saturation.steps.find((x) => x.client?.clientBound)?.rate)} msg/s up were client-bound, see ⚑); with client-bound steps included, ${anyClientMax(heraldUws) >= 0.8 * modelMax ? 'yes' : 'no'} (2 replicas), ${anyClientMax(heraldOne) >= 0.8 * modelMax ? 'yes' : 'no'} (1 replica)` : `${max(heraldUws) >= 0.8 * max(ceiling) ? 'yes' : 'no'} (2 replicas); ${max(heraldOne) >= 0.8 * max(ceiling) ? 'yes' : 'no'} (1 replica)`} |`,
    `| p99 ≤ 50 ms at 100k deliveries/s (100 msg/s to 1,000 subscribers) | ${latencyAt(heraldUws, 100)?.p99 ?? 'n/a'} ms | ${(latencyAt(heraldUws, 100)?.p99 ?? Infinity) <= 50 ? 'yes' : 'no'} |`,
    `| whole-stack CPU per delivery at 100k deliveries/s ≤ 1.3× raw uWS's (2 replicas + Redis) | ${f(heraldUws.cpuMsPer1000Deliveries, 2)} vs ${f(ceiling.cpuMsPer1000Deliveries, 2)} ms per 1,000: ${f((heraldUws.cpuMsPer1000Deliveries ?? NaN) / (ceiling.cpuMsPer1000Deliveries ?? NaN), 2)}× | ${(heraldUws.cpuMsPer1000Deliveries ?? Infinity) <= 1.3 * (ceiling.cpuMsPer1000Deliveries ?? 0) ? 'yes' : 'no: the Redis hop is system calls, not JavaScript (the profile below: each replica\'s time goes to writing each PUBLISH and to waking the other processes on the one core); this round\'s adapter skips decoding a replica\'s own echoed broadcasts, which the figures do not show apart from the spread, and stopping the echoes or writing one PUBLISH per turn was not done (see The Redis hop, measured apart: bench/hop.ts)'} |`,
    `| p99 ≤ 20 ms at 100k deliveries/s (2 replicas + Redis) | ${latencyAt(heraldUws, 100)?.p99 ?? 'n/a'} ms${clientMark(heraldUws.latency.find((x) => x.rate === 100)?.client)} | ${(latencyAt(heraldUws, 100)?.p99 ?? Infinity) <= 20 ? 'yes' : 'no: at this rate the client core is above 80 % (⚑), so the p99 is the harness\'s as much as herald\'s; single runs here spread from 39 to 103 ms (bench/probe.ts LATENCY=1, quiet machine)'} |`,
    `| ≤ 8 KB RSS per idle connection | ${f(heraldUws.idle.bytesPerConnection)} B | ${(heraldUws.idle.bytesPerConnection ?? Infinity) <= 8192 ? 'yes' : 'no'} |`,
    `| 100k idle connections on one replica | ${f(cap.connected)} held (${f(cap.bytesPerConnection)} B each); stopped by the per-process file-descriptor hard limit of ${f(cap.fdLimit)}, which cannot be raised here (setrlimit: Operation not permitted) | no (limit of this machine) |`,
    '',
    '## Why two replicas on one core stay below 80 % of raw uWS',
    '',
    analysis('why-two-replicas', {
      modelMax: f(modelMax),
      usPerDelivery: f(1e6 / modelMax, 3),
      clientBoundNote: ceiling.saturation.steps.some((x) => x.client?.clientBound) ? ', a client-bound one: the client core was the limit, so the cost per delivery is an upper bound' : '',
      budgetUs: f(budgetUs),
      fanout: String(SATURATION_FANOUT),
      ceilingUs: f(ceiling.perMessage.cpuUsPerMessage),
      extraOne: f(extraUs(heraldOne)),
      extraOneRedis: f(extraUs(heraldOneRedis)),
      extraTwo: f(extraUs(heraldUws)),
      predictedOne: predicted(heraldOne),
      predictedOneRedis: predicted(heraldOneRedis),
      predictedTwo: predicted(heraldUws),
      measuredOne: modelRatio(heraldOne),
      measuredOneRedis: modelRatio(heraldOneRedis),
      measuredTwo: modelRatio(heraldUws),
    }),
    '',
    ...(soketiRatios(results).length
      ? [
          '## herald against soketi',
          '',
          analysis('soketi-intro'),
          '',
          '| figure | herald | soketi | herald / soketi |',
          '| --- | --- | --- | --- |',
          ...soketiRatios(results),
          '',
        ]
      : []),
    '## Saturation steps',
    '',
    analysis('saturation-intro', { clientBound: f(CLIENT_BOUND * 100) }),
    '',
    '| stack | steps |',
    '| --- | --- |',
    ...results.map((r) => `| ${r.stack} | ${r.saturation.steps.map((s) => `${f(s.rate)} → ${f(s.deliveriesPerSecond)} (${s.latencyMs.p99})${clientMark(s.client)}${s.saturated ? ` ✗ ${f(s.achievedPublishRate)}/s` : ''}`).join('; ')} |`),
    '',
    '![deliveries per second against publish rate](docs/bench-throughput.svg)',
    '',
    '![p99 latency against publish rate](docs/bench-latency.svg)',
    '',
    '## Classic against sharded adapter (300 rooms, 1,000 messages/s spread over them)',
    '',
    analysis('sharded-intro'),
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
    analysis('sharded-notes'),
    '',
    ...jitterSection(jitter, jitterHeraldRecovery, jitterSeparate),
    ...compressionSection(compression),
    ...deltasSection(deltas, deltasSeparate),
    ...sseSection(sse, sseSeparate),
    ...journalSection(journal, journalSeparate),
    ...scaleSection(),
    ...conflationSection(conflation, conflationSeparate),
    // Measured beside the bench, not regenerated by it: what recovery costs, and what the probes and profiles showed.
    analysis('recovery-cost'),
    analysis('redis-hop'),
    analysis('heap-compaction'),
    analysis('scale-profile'),
    analysis('scale-reconnect'),
    analysis('harness-findings'),
    analysis('profile-findings'),
  ];
  return lines.join('\n');
}

/** WS_COMPRESSION off and on (bench/compression.ts); absent from results written before it existed. */
function compressionSection(rows: CompressionRow[] | undefined): string[] {
  if (!rows || rows.length === 0) return [];
  const r0 = rows[0]!;
  return [
    `## Compression on the wire (\`WS_COMPRESSION\`, ${f(r0.subscribers)} subscribers of one room, one replica, ${f(r0.published)} score updates)`,
    '',
    analysis('compression-intro', { frameBytes: String(r0.frameBytes) }),
    '',
    '| transport | compression | negotiated | bytes on the wire per delivery | server CPU µs per delivery | RSS growth per connection | last delivery after the last publish |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.transport} | ${r.compression} | ${f(r.negotiated)} / ${f(r.subscribers)} | ${f(r.wireBytesPerDelivery, 1)} | ${f(r.serverCpuUsPerDelivery, 1)} | ${f(r.rssBytesPerConnection / 1024, 1)} KiB | ${f(r.drainSeconds, 1)} s |`),
    '',
  ];
}

/** What the recovery journal keeps in heap (bench/journal-memory.ts): this run's rows, or a separate run's. */
function journalSection(rows: JournalRow[] | undefined, separate: SeparateJournalRun | undefined): string[] {
  const shown = rows ?? separate?.rows;
  if (!shown || shown.length === 0) return [];
  const r0 = shown[0]!;
  const source = rows ? 'this run' : `a run of this step alone (\`node --import tsx bench/journal-memory.ts --record\`, ${separate!.generatedAt}, herald's src/ as of commit ${separate!.commit})`;
  return [
    `## What the recovery journal keeps (${f(r0.publishes)} publishes over ${f(r0.rooms)} history rooms, one replica)`,
    '',
    analysis('journal-intro', { source }),
    '',
    ...journalTable(shown),
    '',
    analysis('journal-notes'),
    '',
  ];
}

/** bench/conflation.ts run alone (`--step conflation --record`). */
interface ConflationRun {
  generatedAt: string;
  commit: string;
  machine: string;
  rows: ConflationRow[];
}

/** A client that stops reading in conflated rooms (bench/conflation.ts); absent from results written before it existed. */
function conflationSection(thisRun: ConflationRow[] | undefined, separate: ConflationRun | undefined): string[] {
  const rows = thisRun && thisRun.length > 0 ? thisRun : separate?.rows;
  if (!rows || rows.length === 0) return [];
  const r0 = rows[0]!;
  const source =
    thisRun && thisRun.length > 0
      ? 'Measured by this run.'
      : `Measured by a run of this step alone (\`npm run build && node --import tsx bench/run.ts --step conflation --record\`, ${separate!.generatedAt}, herald's src/ as of commit ${separate!.commit}; machine: ${separate!.machine}, shared with other sessions' work).`;
  const ms = (v: number | undefined) => (v === undefined ? 'never' : `${f(v, 0)} ms`);
  return [
    `## Conflation for a client that stops reading (\`CONFLATE_ROOMS\`, ${f(r0.rooms)} score rooms at ${f(r0.rate)} updates a second, one replica)`,
    '',
    `${source} A client stops reading right after it subscribed, for bench/conflation.ts's SECONDS (${f(CONFLATION_DEFAULTS.seconds)} s unless set), then reads again; healthy clients of the same rooms read all along (bench/conflation.ts, docs/guides/live-scores.md).`,
    '',
    '| transport | scores published | slow client received | conflated | most held at once | slow client closed | newest of every room after it reads again | healthy delivered | healthy p50/p99 without / with it |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.transport} | ${f(r.published)} | ${f(r.slowReceived)} | ${f(r.conflated)} | ${f(r.maxHeld)} | ${r.slowClosed ?? 'no'} | ${ms(r.newestAfterMs)} | ${f(r.healthyDelivered)} / ${f(r.healthyExpected)} | ${r.baseline.join('/')} ms / ${r.withSlow.join('/')} ms |`),
    '',
    ...(rows.some((r) => r.slowClosed === 'ping timeout')
      ? [
          'A slow client closed by `ping timeout` was not closed by herald: socket.io-client gave up waiting for a ping. On loopback, after 30 s of a zero window, the replica\'s socket is in TCP\'s persist timer, and the window the relay then opens is smaller than loopback\'s 64 KB MSS, so the kernel sends nothing until its next probe, seconds later, past the client\'s ping deadline (bench/conflation.ts says how it was seen: `ss -tnio`). With a real network\'s 1,460-byte MSS the open window is used at once. test/conflation.test.ts covers both transports with shorter stalls, where it does not arise.',
          '',
        ]
      : []),
  ];
}

/** Delta rooms against whole messages and compression (bench/deltas.ts): this run's, or a separate run's. */
function deltasSection(thisRun: DeltaRun | undefined, separate: DeltaRun | undefined): string[] {
  const d = thisRun ?? separate;
  if (!d) return [];
  const o = d.options;
  const rows = deltaSummary(d.rows);
  const setup = (n: number) => (n === 1 ? '1 replica (no Redis)' : `${n} replicas + Redis`);
  const find = (n: number, v: string) => rows.find((r) => r.replicas === n && r.variant === v);
  const pct = (a: number | undefined, b: number | undefined, digits = 0) => (a === undefined || b === undefined ? 'n/a' : `${f((a / b) * 100, digits)} %`);
  const change = (a: number, b: number) => `${a >= b ? '+' : '−'}${f(Math.abs(a / b - 1) * 100)} %`;
  const source = thisRun
    ? 'this run'
    : `a run of this step alone (\`npm run build && SUBSCRIBERS=${o.subscribers} RATE=${o.rate} SECONDS=${o.seconds} ROUNDS=${o.rounds} SETUPS=${o.setups.join(',')}${o.variants ? ` VARIANTS='${o.variants.join(',')}'` : ''}${o.transport && o.transport !== 'uws' ? ` TRANSPORT=${o.transport}` : ''} node --import tsx bench/deltas.ts --record\`, ${d.generatedAt}, herald's src/ as of commit ${d.commit}; machine: ${d.machine}; servers and Redis on CPU ${SERVER_CPU}, clients and publisher on CPU ${CLIENT_CPU}, the machine shared with other sessions' work)`;
  const setups = [...new Set(rows.map((r) => r.replicas))];
  const wireTarget = (n: number, v: string) => (find(n, v)?.wireBytesPerDelivery ?? Infinity) / (find(n, 'whole')?.wireBytesPerDelivery ?? 0);
  const cpuTarget = (n: number) => (find(n, 'delta')?.serverCpuUsPerDelivery ?? Infinity) / (find(n, 'whole')?.serverCpuUsPerDelivery ?? 0);
  /** Per round, delta's CPU per delivery against whole's on the same setup (run minutes apart). */
  const paired = (n: number) =>
    [...new Set(d.rows.map((r) => r.round))].map((round) => {
      const at = (v: string) => d.rows.find((r) => r.round === round && r.replicas === n && r.variant === v)!.serverCpuUsPerDelivery;
      return change(at('delta'), at('whole'));
    });
  const overlap = (n: number) => {
    const a = find(n, 'delta');
    const b = find(n, 'whole');
    return !!a && !!b && a.serverCpuMin <= b.serverCpuMax && b.serverCpuMin <= a.serverCpuMax;
  };
  const deflate = (n: number, v: string, on: string) => `${f(find(n, v)?.wireBytesPerDelivery, 0)} → ${f(find(n, on)?.wireBytesPerDelivery, 0)} bytes, CPU ${change(find(n, on)!.serverCpuUsPerDelivery, find(n, v)!.serverCpuUsPerDelivery)}`;
  const w = d.whole;
  const x = d.delta;
  const overhead = x.total - x.payload;
  const a = d.apply;
  return [
    `## Delta rooms beside whole messages and compression (a ${f(d.payloadBytes)}-byte live score, ${f(o.subscribers)} subscribers of one room, ${f(o.rate)} updates a second for ${f(o.seconds)} s)`,
    '',
    `Measured by ${source}. Each row is a fresh stack on the ${o.transport === 'node' ? 'node' : 'uWS'} transport; ${f(o.rounds)} round${o.rounds > 1 ? 's' : ''} of every setup and variant, interleaved; figures are the mean over rounds, the server CPU with the rounds' range. The room (\`HISTORY_ROOMS='scores:* delta'\`) is the same in every variant, so whole messages carry the same meta (\`room\`, \`id\`, \`ts\`) and recovery offset as deltas; the delta variants' subscribers \`subscribe {room, delta: "fossil"}\`. Each update changes two or three fields of the object (\`minute\`, \`updatedAt\`, sometimes \`shots\`; bench/compression.ts's \`scoreUpdate\`). Two replicas: subscribers on both, every other one; publishes over HTTP to each replica in turn. Bytes on the wire: what the subscribers' sockets read (WebSocket frames, headers included), per delivery; two warm-up publishes go first, so every measured delivery of a delta variant is a delta. Server CPU: the herald processes' user + system time over the window (publishes included, the same in every variant), per delivery; no idle baseline subtracted. The first 20 subscribers apply every delta with the client module's code and check each rebuilt payload against the published one. \`compression\` is \`WS_COMPRESSION=on\` (each message deflated on its own); \`context\` is \`WS_COMPRESSION=context\` (a deflate window per connection kept from one message to the next; on this uWS build every dedicated compressor runs with a 512-byte window, \`server_max_window_bits=9\`, whose back-references reach about 250 bytes: a delta frame fits, a whole one does not). RSS per connection: the herald processes' growth from before the subscribers connected to after the run, over the subscribers (one sample each; the other sessions' work on the machine moves it by a few KiB).`,
    '',
    '| setup | variant | permessage-deflate negotiated | Socket.IO frame, uncompressed | bytes on the wire per delivery | of whole | herald CPU µs per delivery (rounds\' range) | of whole | Redis CPU µs per delivery | RSS growth per connection | deltas delivered (rebuilt and checked) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => {
      const base = find(r.replicas, 'whole');
      return `| ${setup(r.replicas)} | ${r.variant} | ${f(r.negotiated)} / ${f(r.subscribers)} | ${f(r.frameBytes, 1)} | ${f(r.wireBytesPerDelivery, 1)} | ${pct(r.wireBytesPerDelivery, base?.wireBytesPerDelivery)} | ${f(r.serverCpuUsPerDelivery, 1)} (${f(r.serverCpuMin, 1)}–${f(r.serverCpuMax, 1)}) | ${pct(r.serverCpuUsPerDelivery, base?.serverCpuUsPerDelivery)} | ${r.replicas === 1 ? 'no Redis' : f(r.redisCpuUsPerDelivery, 2)} | ${r.rssBytesPerConnection === undefined ? 'n/a' : `${f(r.rssBytesPerConnection / 1024, 1)} KiB`} | ${r.variant.startsWith('delta') ? `${f(r.deltaDeliveries)} of ${f(r.deliveries)} (${f(r.verified)})` : '—'} |`;
    }),
    '',
    '| target (issue 28) | ' + setups.map(setup).join(' | ') + ' | met |',
    '| --- | ' + setups.map(() => '---').join(' | ') + ' | --- |',
    `| delta ≤ 15 % of the whole message's bytes on the wire | ${setups.map((n) => `delta ${pct(find(n, 'delta')?.wireBytesPerDelivery, find(n, 'whole')?.wireBytesPerDelivery, 1)}; delta + compression ${pct(find(n, 'delta + compression')?.wireBytesPerDelivery, find(n, 'whole')?.wireBytesPerDelivery, 1)}${find(n, 'delta + context') ? `; delta + context ${pct(find(n, 'delta + context')?.wireBytesPerDelivery, find(n, 'whole')?.wireBytesPerDelivery, 1)}` : ''}`).join(' | ')} | ${setups.every((n) => wireTarget(n, 'delta') <= 0.15) ? 'yes' : setups.every((n) => wireTarget(n, 'delta + compression') <= 0.15) ? 'only with compression' : setups.every((n) => wireTarget(n, 'delta + context') <= 0.15) ? `only with \`WS_COMPRESSION=context\` (at ${setups.map((n) => change(find(n, 'delta + context')!.serverCpuUsPerDelivery, find(n, 'whole')!.serverCpuUsPerDelivery)).join(', ')} server CPU per delivery against whole messages)` : `no: the frame's parts below; an empty delta would still be ${pct(overhead, w.total)} of the whole frame`} |`,
    `| server CPU per delivery, delta within 10 % of whole messages (compression off) | ${setups.map((n) => `${f(find(n, 'delta')?.serverCpuUsPerDelivery, 1)} against ${f(find(n, 'whole')?.serverCpuUsPerDelivery, 1)} µs: ${change(find(n, 'delta')!.serverCpuUsPerDelivery, find(n, 'whole')!.serverCpuUsPerDelivery)} (round by round, against the same round's whole run: ${paired(n).join(', ')})`).join(' | ')} | ${setups.every((n) => cpuTarget(n) <= 1.1) ? 'yes' : setups.some((n) => cpuTarget(n) <= 1.1) ? `${setups.filter((n) => cpuTarget(n) <= 1.1).map(setup).join(', ')} only` : 'no'}${setups.some((n) => overlap(n)) ? ` (${setups.filter(overlap).map(setup).join(' and ')}: the rounds' ranges of delta and whole overlap; the differences are within this shared machine's noise)` : ''} |`,
    '',
    `Where a frame's bytes go (one subscriber's frames, uncompressed, mean over ${f(o.rate * o.seconds)}):`,
    '',
    '| part | whole message | delta |',
    '| --- | --- | --- |',
    `| WebSocket frame header | ${f(w.header)} | ${f(x.header)} |`,
    `| Socket.IO envelope (\`42["score",\` … \`]\`) | ${f(w.envelope)} | ${f(x.envelope)} |`,
    `| payload: the object's JSON / the fossil delta as a JSON string | ${f(w.payload, 1)} | ${f(x.payload, 1)} (the delta itself: ${f(x.deltaBytes, 1)} bytes) |`,
    `| meta (\`room\`, \`id\`, \`ts\`; a delta's also \`base\`) | ${f(w.meta, 1)} | ${f(x.meta, 1)} (\`,"base":…\`: ${f(x.base, 1)}) |`,
    `| recovery offset (Socket.IO's last argument) | ${f(w.offset, 1)} | ${f(x.offset, 1)} |`,
    `| frame | ${f(w.total, 1)} | ${f(x.total, 1)} (${pct(x.total, w.total)}) |`,
    '',
    `The fossil delta itself is ${pct(x.deltaBytes, w.total, 1)} of the whole frame; everything around it (meta ${f(x.meta)}, offset ${f(x.offset)}, envelope and header ${f(x.envelope + x.header)}: ${f(overhead, 1)} bytes) is ${pct(overhead, w.total, 1)}, so no delta frame with this meta and offset can reach 15 %. The room name is ${f(Buffer.byteLength(JSON.stringify('scores:epl-2026-27-md14-ars-che')))} bytes of the meta and the two stream ids (\`id\`, \`base\`) ${f(2 * Buffer.byteLength('"1796334406367-0"'))}. permessage-deflate compresses each message on its own (no context kept between messages) and uWS deflates every delivery on its own, so it costs server CPU per delivery whatever the frame (${setups.map((n) => `${setup(n)}: whole ${deflate(n, 'whole', 'compression')}; delta ${deflate(n, 'delta', 'delta + compression')}`).join('; ')}).`,
    ...(setups.some((n) => find(n, 'delta + context'))
      ? [
          '',
          `With \`WS_COMPRESSION=context\` the window kept per connection turns what a delta frame repeats from the one before (the room, the meta's keys, the offset's prefix, the previous id now named as \`base\`) into back-references: ${setups
            .filter((n) => find(n, 'delta + context'))
            .map((n) => `${setup(n)}: delta ${deflate(n, 'delta', 'delta + context')}, ${pct(find(n, 'delta + context')!.wireBytesPerDelivery, find(n, 'whole')!.wireBytesPerDelivery, 1)} of the whole message's bytes at ${pct(find(n, 'delta + context')!.serverCpuUsPerDelivery, find(n, 'whole')!.serverCpuUsPerDelivery)} of its server CPU${find(n, 'context') ? `; whole ${deflate(n, 'whole', 'context')}` : ''}${find(n, 'delta + context')?.rssBytesPerConnection !== undefined && find(n, 'delta')?.rssBytesPerConnection !== undefined ? `; RSS per connection ${f(find(n, 'delta + context')!.rssBytesPerConnection! / 1024, 1)} KiB against ${f(find(n, 'delta')!.rssBytesPerConnection! / 1024, 1)} KiB without compression` : ''}`)
            .join('; ')}.${o.transport === 'node' ? ' `ws` keeps a 4 KiB window here, which holds several whole frames.' : ' On uWS the window is 512 bytes (this build\'s dedicated compressor, whatever size is asked), which a ~190-byte delta frame fits in and a ~550-byte whole frame does not.'}`,
        ]
      : []),
    '',
    `Client CPU (this process, \`process.cpuUsage\`, the ${f(a.deltas)} deltas one subscriber received, a mean fossil delta of ${f(a.meanDeltaBytes, 1)} bytes, applied again in a loop):`,
    '',
    '| work | µs CPU each |',
    '| --- | --- |',
    `| the client module's path per delta (client/src/fossil.ts \`applyDelta\`, UTF-8 decode, \`JSON.parse\`) | ${f(a.moduleUs, 2)} |`,
    `| client/src/fossil.ts \`applyDelta\` alone | ${f(a.moduleApplyOnlyUs, 2)} |`,
    `| fossil-delta's \`applyDelta\` (checksum verified) | ${f(a.fossilDeltaUs, 2)} |`,
    ...(a.wholeFrameUs !== undefined && a.deltaFrameUs !== undefined
      ? [
          `| a client's work per delivery, whole message: \`JSON.parse\` of the Socket.IO frame text (what socket.io-client does) | ${f(a.wholeFrameUs, 2)} |`,
          `| a client's work per delivery, delta: \`JSON.parse\` of the frame text, then the module's path | ${f(a.deltaFrameUs, 2)} |`,
        ]
      : []),
    `| server side, once per message per replica: fossil-delta's \`createDelta\` | ${f(a.createUs, 2)} |`,
    '',
  ];
}

/** Server-Sent Events beside Socket.IO, from bench/sse.ts's output. */
export interface SseRun {
  generatedAt: string;
  commit: string;
  machine: string;
  /** Idle connections opened of each kind. */
  count: number;
  subscribers: number;
  rate: number;
  seconds: number;
  sseIdleKiB: number;
  ioIdleKiB: number;
  sseCpuUs: number;
  sseDelivered: number;
  sseExpected: number;
  ioCpuUs: number;
  ioDelivered: number;
  ioExpected: number;
}

/**
 * Runs bench/sse.ts as it is, in a child process (it is a script: it measures when loaded, and
 * exports nothing), and reads its two result lines; throws when they are not there.
 */
async function sseStep(machine: string): Promise<SseRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/sse.ts'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    process.stdout.write(chunk);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30 * 60_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`bench/sse.ts exited ${code}`);
  const rss = /RSS per idle connection \((\d+)\): SSE ([\d.]+) KB, Socket\.IO ([\d.]+) KB/.exec(out);
  const cpu = /server CPU per delivery \((\d+) subscribers, ([\d.]+) msg\/s, ([\d.]+) s\): SSE ([\d.]+) µs \((\d+) of (\d+)\), Socket\.IO ([\d.]+) µs \((\d+) of (\d+)\)/.exec(out);
  if (!rss || !cpu) throw new Error(`bench/sse.ts: its result lines were not found in:\n${out}`);
  return {
    generatedAt: new Date().toISOString(),
    commit: srcCommit(),
    machine,
    count: Number(rss[1]),
    sseIdleKiB: Number(rss[2]),
    ioIdleKiB: Number(rss[3]),
    subscribers: Number(cpu[1]),
    rate: Number(cpu[2]),
    seconds: Number(cpu[3]),
    sseCpuUs: Number(cpu[4]),
    sseDelivered: Number(cpu[5]),
    sseExpected: Number(cpu[6]),
    ioCpuUs: Number(cpu[7]),
    ioDelivered: Number(cpu[8]),
    ioExpected: Number(cpu[9]),
  };
}

function sseSection(thisRun: SseRun | undefined, separate: SseRun | undefined): string[] {
  const s = thisRun ?? separate;
  if (!s) return [];
  const source = thisRun
    ? 'this run'
    : `a run of this step alone (\`npm run build && COUNT=${s.count} RATE=${s.rate} SECONDS=${s.seconds} node --import tsx bench/run.ts --step sse --record\`, which runs \`node --import tsx bench/sse.ts\` with those settings; ${s.generatedAt}, herald's src/ as of commit ${s.commit}; machine: ${s.machine}; servers on CPU ${SERVER_CPU}, clients on CPU ${CLIENT_CPU}, the machine shared with other sessions' work)`;
  return [
    '## Server-Sent Events beside Socket.IO',
    '',
    `Measured by ${source}. One herald replica (uWS transport, no Redis), a fresh process for each figure. RSS per idle connection: ${f(s.count)} idle \`GET /v1/stream\` streams of one room against as many idle Socket.IO connections (the harness's \`connections\` scenario), the replica's RSS growth over the connections. CPU per delivery: ${f(s.subscribers)} subscribers of one room, ${f(s.rate)} messages a second for ${f(s.seconds)} s, streams (raw sockets) against Socket.IO clients (the harness's \`fanout-latency\`); the replica's user + system time over the run, per delivery. [Server-Sent Events](docs/reference/sse.md) has the protocol.`,
    '',
    '| figure | SSE | Socket.IO | SSE / Socket.IO |',
    '| --- | --- | --- | --- |',
    `| RSS per idle connection (${f(s.count)}) | ${f(s.sseIdleKiB, 1)} KiB | ${f(s.ioIdleKiB, 1)} KiB | ${f(s.sseIdleKiB / s.ioIdleKiB, 2)}× |`,
    `| server CPU µs per delivery | ${f(s.sseCpuUs, 2)} (${f(s.sseDelivered)} of ${f(s.sseExpected)} delivered) | ${f(s.ioCpuUs, 2)} (${f(s.ioDelivered)} of ${f(s.ioExpected)}) | ${f(s.sseCpuUs / s.ioCpuUs, 2)}× |`,
    '',
  ];
}

/** The 100,000-fan run (`npm run bench:scale`, bench/scale-results.md), made on its own: too long for this run. */
function scaleSection(): string[] {
  const file = join(ROOT, 'bench/scale-results.md');
  if (!existsSync(file)) return [];
  const [heading, ...rest] = readFileSync(file, 'utf8').trim().split('\n');
  const json = join(ROOT, 'bench/scale-results.json');
  const date = existsSync(json) ? (JSON.parse(readFileSync(json, 'utf8')) as { date?: string }).date : undefined;
  return [heading!, '', `Run on its own${date ? ` on ${date}` : ''}, not as part of \`npm run bench\` (it takes the whole machine for about 17 minutes: herald, then the same fans against raw uWS); copied here from bench/scale-results.md.`, ...rest, ''];
}

interface Run {
  machine: string;
  generatedAt: string;
  seconds: number;
  results: Awaited<ReturnType<typeof measureStack>>[];
  capacity: Awaited<ReturnType<typeof capacity>>;
  sharded: Awaited<ReturnType<typeof shardedComparison>>;
  compression?: CompressionRow[];
  conflation?: ConflationRow[];
  /** The same measured on its own (`bench/run.ts --step conflation --record`). */
  conflationSeparate?: ConflationRun;
  jitter?: JitterRow[];
  /** Whether herald's src/ knew CONNECTION_RECOVERY_SECONDS (issue 18's built-in recovery) when the run measured it. */
  jitterHeraldRecovery?: boolean;
  /** A jitter run made later on its own (`bench/jitter.ts --record`), shown beside this run's. */
  jitterSeparate?: SeparateJitterRun;
  /** What the recovery journal keeps in heap, measured by this run. */
  journal?: JournalRow[];
  /** The same measured later on its own (`bench/journal-memory.ts --record`). */
  journalSeparate?: SeparateJournalRun;
  /** Delta rooms against whole messages and compression (bench/deltas.ts), measured by this run. */
  deltas?: DeltaRun;
  /** The same measured on its own (`bench/deltas.ts --record`). */
  deltasSeparate?: DeltaRun;
  /** Server-Sent Events beside Socket.IO (bench/sse.ts), measured by this run. */
  sse?: SseRun;
  /** The same measured on its own (`bench/run.ts --step sse --record`). */
  sseSeparate?: SseRun;
  /** Other users' processes seen on the machine during the run, if any (it is shared). */
  shared?: string;
  /** The last commit that changed herald's src/ in the tree the run measured. */
  commit?: string;
}

/** CPU seconds this process and its reaped children (stopped stacks) have used, from /proc. */
function treeCpuSeconds(): number {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}

/**
 * The machine is shared (other sessions run tests on it): how much of both cores something other
 * than this run used, from /proc/stat's busy time less this process tree's CPU (the workers,
 * still running, counted apart). Returns a function giving the sentence for BENCHMARKS.md.
 */
function othersLoad(workers: Workers): () => string {
  const busy = () => (cpuBusySeconds(0) ?? 0) + (cpuBusySeconds(1) ?? 0);
  const workersCpu = () => workers.pids.reduce((a, pid) => a + processCpuSeconds(pid), 0);
  const t0 = Date.now();
  const [b0, c0, w0] = [busy(), treeCpuSeconds(), workersCpu()];
  return () => {
    const wall = (Date.now() - t0) / 1000;
    const others = Math.max(0, busy() - b0 - (treeCpuSeconds() - c0) - (workersCpu() - w0));
    return `other processes used ${f(others)} CPU-seconds of the two cores during the ${f(wall)} s run (${f((others / wall) * 100)} % of one core on average)`;
  };
}

/** Keeps a step run alone in bench/results.json beside the last full run (`--report` shows it). */
function recordSeparate(step: string, put: (run: Run) => unknown): void {
  const file = join(ROOT, 'bench/results.json');
  const run = JSON.parse(readFileSync(file, 'utf8')) as Run;
  put(run);
  writeFileSync(file, JSON.stringify(run, null, 2));
  console.log(`# ${step}: recorded in bench/results.json; \`node --import tsx bench/run.ts --report\` shows it`);
}

/** BENCHMARKS.md and the charts, from one run's numbers. */
function writeOutputs(run: Run): void {
  const { results } = run;
  writeFileSync(
    join(ROOT, 'docs/bench-throughput.svg'),
    lineChart({ title: 'Deliveries/s against publish rate (2 rooms × 500 subscribers)', xLabel: 'publish rate (messages/s)', yLabel: 'deliveries/s', series: results.map((r) => ({ name: r.stack, points: r.saturation.steps.map((s) => [s.rate, s.deliveriesPerSecond] as [number, number]) })), width: 760 }),
  );
  writeFileSync(
    join(ROOT, 'docs/bench-latency.svg'),
    lineChart({ title: 'p99 latency against publish rate', xLabel: 'publish rate (messages/s)', yLabel: 'p99 ms', series: results.map((r) => ({ name: r.stack, points: r.saturation.steps.map((s) => [s.rate, s.latencyMs.p99] as [number, number]) })), width: 760 }),
  );
  writeFileSync(join(ROOT, 'BENCHMARKS.md'), markdown(run));
}

async function main() {
  if (process.argv.includes('--report')) {
    // Rewrite BENCHMARKS.md and the charts from bench/results.json, without measuring again.
    writeOutputs(JSON.parse(readFileSync(join(ROOT, 'bench/results.json'), 'utf8')) as Run);
    return;
  }
  pinToClientCpu();
  const startedAt = Date.now();
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${execFileSync('bash', ['-c', '. /etc/os-release && echo $PRETTY_NAME']).toString().trim()}, Node ${process.version}, Redis ${/v=(\S+)/.exec(execFileSync('redis-server', ['--version']).toString())?.[1]}`;
  const step = process.argv.indexOf('--step');
  if (step >= 0) {
    // One step alone: `--step sse [--record]` (bench/deltas.ts and the others run alone by themselves).
    const name = process.argv[step + 1];
    if (name === 'conflation') {
      const rows = await conflationBench(CONFLATION_DEFAULTS);
      const separate: ConflationRun = { generatedAt: new Date().toISOString(), commit: srcCommit(), machine, rows };
      console.log(JSON.stringify(separate));
      if (process.argv.includes('--record')) recordSeparate('conflation', (run) => (run.conflationSeparate = separate));
      return;
    }
    if (name !== 'sse') throw new Error(`--step: unknown step ${name} (sse or conflation; run bench/deltas.ts, bench/jitter.ts, bench/journal-memory.ts alone)`);
    const sse = await sseStep(machine);
    console.log(JSON.stringify(sse));
    if (process.argv.includes('--record')) recordSeparate('sse', (run) => (run.sseSeparate = sse));
    return;
  }
  const workers = await Workers.start(2, { cpus: CLIENT_CPU });
  const sharedNote = othersLoad(workers);
  const results = [];
  try {
    for (const make of [
      () => heraldStack(STACKS.herald, 'uws', 2),
      () => heraldStack(STACKS.heraldOne, 'uws', 1, { REDIS_URL: '' }),
      () => heraldStack(STACKS.heraldOneRedis, 'uws', 1),
      () => heraldStack(STACKS.heraldWs, 'node', 2),
      () => stockStack(),
      ceilingStack,
      () => soketiStack(STACKS.soketi, 2),
      () => soketiStack(STACKS.soketiOne, 1),
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
    console.log('# bench: compression off and on');
    const compression = await compressionComparison(QUICK ? { ...COMPRESSION_DEFAULTS, seconds: 3 } : COMPRESSION_DEFAULTS);
    console.log(JSON.stringify(compression));
    console.log('# bench: delta rooms beside whole messages and compression');
    const deltas = await deltaBench(QUICK ? { ...DELTA_DEFAULTS, seconds: 3, rounds: 1 } : DELTA_DEFAULTS, console.log);
    console.log(JSON.stringify({ whole: deltas.whole, delta: deltas.delta, apply: deltas.apply }));
    console.log('# bench: Server-Sent Events beside Socket.IO');
    const sse = await sseStep(machine);
    console.log('# bench: conflation (a client that stops reading)');
    const conflation = await conflationBench(QUICK ? { ...CONFLATION_DEFAULTS, seconds: 9 } : CONFLATION_DEFAULTS);
    console.log(JSON.stringify(conflation));
    console.log('# bench: jitter (connections reset every ~2 s)');
    const jitter = await jitterComparison(undefined, QUICK ? { ...JITTER_DEFAULTS, clients: 50, seconds: 6 } : JITTER_DEFAULTS);
    console.log(JSON.stringify(jitter));
    console.log('# bench: what the recovery journal keeps');
    const journal = await journalMemory(QUICK ? { ...JOURNAL_DEFAULTS, publishes: 500, sizes: ['small'] } : JOURNAL_DEFAULTS);
    console.log(JSON.stringify(journal));
    const jitterHeraldRecovery = sourceMentions('CONNECTION_RECOVERY_SECONDS');
    const commit = srcCommit();
    const run: Run = { commit, machine, generatedAt: new Date().toISOString(), seconds: (Date.now() - startedAt) / 1000, shared: sharedNote(), results, capacity: cap, sharded, compression, deltas, sse, conflation, jitter, jitterHeraldRecovery, journal };
    writeFileSync(join(ROOT, 'bench/results.json'), JSON.stringify(run, null, 2));
    writeOutputs(run);
    const seconds = run.seconds;
    console.log(`# bench: done in ${seconds.toFixed(0)} s; wrote BENCHMARKS.md`);
  } finally {
    await workers.stop();
  }
}

await main();
