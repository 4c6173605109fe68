/**
 * `npm run bench`: herald beside what users deploy today, in one run on this machine, with the
 * load-test harness. Servers (and Redis) run on CPU 0, clients and the publisher on CPU 1.
 * Writes BENCHMARKS.md, bench/results.json and the charts under docs/.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { lineChart } from '../loadtest/harness/chart.js';
import * as scenarios from '../loadtest/harness/scenarios.js';
import { CLIENT_BOUND, cpuBusySeconds, processCpuSeconds, Workers } from '../loadtest/harness/workers.js';
import { COMPRESSION_DEFAULTS, compressionComparison, type CompressionRow } from './compression.js';
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

/** What the client measurements, the soketi runs and the per-message probes showed (issue 21). */
const HARNESS_FINDINGS = `## The client, soketi, and where herald's per-message cost goes (2026-12-01)

Measured on this machine on 2026-12-01 while other sessions ran their test suites on it (both
cores; \`uptime\` load averages of 4–12 during the run above), so every figure here carries that noise.

**What one client core takes.** \`node --import tsx bench/client-capacity.ts\` connects the two
worker processes (CPU 1, 1,000 connections) to bench/blaster.cjs (CPU 0), which writes prebuilt
event frames as fast as each socket drains and so costs little per frame: the client core is the
limit. The client now reads into one 64 KiB buffer shared by the process (\`net\` \`onread\`);
before, each read was a fresh Buffer and a \`data\` event. Alternating the two clients, two runs
each: with 64 KiB writes 0.116 and 0.172 µs of client CPU per frame (8.5M and 5.5M frames/s) against
0.232 and 0.226 µs before (4.3M and 3.8M frames/s); with \`BLAST_WRITE_BYTES=2048\`, 0.158 and 0.151 µs
against 0.265 and 0.167 µs. So 1.1–2.0× as many frames per client CPU-second. The same A/B through
a real server (\`RATES=1000,2000,3000,4000,5300 STEP_SECONDS=4 node --import tsx bench/probe.ts ceiling\`)
showed no difference (client 0.90–1.00 CPU-s/s with both at every rate, the same deliveries): in the
benchmark a read carries a frame or a few, and the client's cost is the read and the event-loop turn
per socket, not the parsing. At herald's 400 msg/s step above, 183k deliveries/s took 87 % of the
client core (about 4.7 µs per delivery); at raw uWS's 6,400 msg/s step, 2.95M took 97 % (0.33 µs),
because uWS's batches then carry many frames per read. A V8 profile of the two workers at 1,000 msg/s to raw uWS
(\`HARNESS_WORKER_PROFILE=<dir> RATES=1000 STEP_SECONDS=8 node --import tsx bench/probe.ts ceiling\`)
had their main threads 74–75 % idle (start-up included), then Node's \`onStreamRead\` 4.4–4.8 %,
\`Buffer.compare\` 4.2–4.9 % (the per-frame check for herald's own events), the frame parser
2–3 %; that check is now a byte loop, after which the same probe showed 79 % idle and no compare.
Hence the ⚑ marks from a few hundred
messages/s up: the counted ceilings above are lower bounds where a stack kept up with a
client-bound step, and only a second client machine (or more client cores) would lift them.

**Soketi.** Its publisher sends one signed request per connection (soketi answers a pipelined
second request by closing the connection; the issue that filed this had found the same). The
harness checks the signature code against Pusher's documented example (test/harness-clients.test.ts).
In this run soketi kept up with 100 msg/s to 2 × 500 subscribers and at 200 msg/s let the publisher
reach 117 (2 replicas + Redis) and 56 (1 process) with every message delivered: its HTTP API answers
late while its event loop sends, and the client core was not the limit there (40–48 %). An earlier probe
the same day (\`RATES=100,200,400,800 STEP_SECONDS=3 node --import tsx bench/probe.ts soketi-1 soketi\`)
saw the server core at 0.64–0.94 CPU-s/s in those steps, with the rest of the core taken by other
sessions' processes. Its CPU-per-message step (5,000 msg/s asked) was client-bound: opening a TCP
connection per publish costs the client core more than a pipelined request.

**Where herald's time goes per message (2 replicas + Redis).** \`FANOUT=4 RATES=2000,5000 node --import tsx bench/profile.ts\`
(a V8 CPU profile of one replica, 5,000 msg/s to 2 rooms × 4): the core split 0.46 / 0.41 / 0.13
CPU-s/s between the profiled replica, the other one and Redis (about 200 µs of the core per
message); the profiled replica's wall-clock samples were 36.7 % idle and 31.2 % in \`writeBuffer\`, the
synchronous socket write of each PUBLISH to Redis, during which a replica on the shared core is
descheduled for the Redis server and the other replica it just woke. Nothing else reached 2 %: uWS
dispatch 1.9 %, HTTP routing 1.5 + 1.4 %, the publish service 1.1 %, Socket.IO's encoder 0.9 %,
notepack 0.8 + 0.5 %, prom-client's histogram 0.7 %. One replica without Redis at the same load
(\`SINGLE=1 FANOUT=4 RATES=2000,5000 node --import tsx bench/profile.ts\`) used 0.41 CPU-s/s (82 µs per
message) with 77.1 % of its samples idle and no function above 1.7 %. Counted with \`perf stat\` over
5 s of \`FANOUT=4 RATES=5000 STEP_SECONDS=12 node --import tsx bench/probe.ts herald-uws\` (25,000
messages; \`perf stat -e context-switches,syscalls:sys_enter_write,… -p <pid>\` per server process):
each replica 16,793 \`write\` calls (0.67 per message: one per PUBLISH it sends), 10,134 \`sendto\`,
5,227 \`recvfrom\` and 9,399 context switches; Redis 46,245 \`write\` (1.85 per message: its
replies and the message to each of the two subscribed replicas, the publishing one included, with
a few coalesced when one read brought several PUBLISHes),
15,800 \`read\` and 15,148 context switches. Per message the Redis hop is about 3.5 system calls
and 1.4 context switches on the one core, where one replica alone makes none of them; that, not
herald's JavaScript, is the cost to cut. Two ways the numbers point to, not tried in this round (it
did not touch src/): not having each replica's own PUBLISH come back to it (one of the three
sends Redis makes per message, and a wake-up and a decode in the publisher for a message it
discards), and one
PUBLISH write per event-loop turn instead of one per message (tried before on the publishing
side, below, where it cut Redis's writes but raised the replicas' \`sendto\` calls; it was not kept).

`;

/** What the probes and profiles showed; kept with the numbers it explains. */
const PROFILE_FINDINGS = `## What limits each stack here (probes and profiles)

Measured on this machine on 2026-11-21 with \`node --import tsx bench/probe.ts <stacks>\` (the
saturation load with the CPU each core's processes used per step) and \`bench/profile.ts\` (a V8
CPU profile of one replica under that load).

**The harness was the bottleneck before.** The first version of this benchmark published with
\`fetch\` from the coordinating process, which was not pinned, and received with the \`ws\`
package. With the receiving side replaced first, profiles of the client processes showed their
main threads about 68 % idle while the \`fetch\` publisher fell behind the asked rate (1,000/s
asked, 450–700/s reached), and such a step counted as "delivered 100 %" because the criterion only
looked at deliveries. That run reported
366k deliveries/s for herald and 790k for raw uWS. The harness now publishes over pipelined
HTTP/1.1 connections (loadtest/harness/http-pipeline.ts), receives with a frame parser on raw
sockets (loadtest/harness/wsclient.ts), pins the coordinator to the client CPU, and counts a
publisher held back by slow answers as saturation.

**Past the knee, every uWS stack falls into a slow regime.** A saturated step typically delivers
200k–600k/s with the server core at 97–100 %, far below the step before it; a profile taken in
that state (before the broadcast change below) showed 83 % of the replica's time inside uWS
\`app.publish\`. uWebSockets.js writes a
message to a socket that already holds user-space backpressure by first trying a system call to
flush that buffer (\`AsyncSocket::write\`), so once sockets fall behind, the batching that makes
uWS fast (many messages per \`sendto\`) is lost and each delivery costs a system call. The state
can start from one transient stall below the knee: in one probe run raw uWS collapsed at 2,400
messages/s and then sustained 2,800, 3,100 and 3,700 (1.28M, 1.42M, 1.70M deliveries/s). Hence
the sweep goes on past a single saturated step, and the table above shows every step.

**Where herald's time went, and what was changed.** A profile of one replica without Redis at
4,000 messages/s (\`SINGLE=1 RATES=2000,3000,4000 node --import tsx bench/profile.ts\`) showed
the largest JavaScript cost in Socket.IO's uWS fast path: after publishing to the room's uWS topic
it walks every member of the room to find those on HTTP long-polling (\`apply\`,
in-memory-adapter.js:250), 14.7 % of the replica's wall-clock samples with 66.3 % idle. herald now
installs its own version of that broadcast (src/transport/uws-broadcast.ts) that walks an index of
the sockets not on WebSocket instead; the same profile then showed 83.6 % idle and 2.7 % in the
broadcast. Per-request loopback checks (a \`BlockList\` lookup, 1 %) are now cached, and message
ids are a third as long as the UUIDs they replace. Below the knee all stacks batch alike (at 1,500
messages/s, 725k deliveries/s: 4.0 deliveries per \`sendto\` for raw uWS, 5.7 for one herald
replica, 5.2 for two, counted with \`perf stat -e syscalls:sys_enter_sendto\`).

**Two replicas and Redis on one core: too many small sends, now batched.** Before the change
below, at 2,000 messages/s two replicas with Redis saturated (1,202 of 2,000 messages/s reached,
597k deliveries/s, server core 98 %) where one replica with Redis kept up (988k/s). Counted over
10 s with \`perf stat -e syscalls:sys_enter_sendto\`: 2.9 deliveries per \`sendto\` for the two
replicas, 10.6 for one replica with Redis and 12.6 for raw uWS at the same rate. uWS sends each
subscriber everything one event-loop turn published in one system call; with two replicas and Redis
taking turns on one core, a replica's turns were short and carried a message or two each. Holding
the messages arriving from Redis for 1–2 ms, so that the receiving replica publishes them in one
turn, did not help (three variants saturated from 1,000–2,200 messages/s). Holding the publishes
to uWS did: herald now batches them (src/transport/uws-batch.ts, \`BROADCAST_BATCH_MS\`, default
1 ms). A publish goes out at once unless another went out less than 1 ms before; then it waits
until 1 ms after that one, with every publish made meanwhile. The batch is flushed before every
join, leave, upgrade to WebSocket and direct write to a connection, so each connection gets the
same messages in the same order (test/uws-batch.test.ts). At 2,000 messages/s two replicas then
kept up (988k/s) at 9.8 deliveries per \`sendto\`. In sweeps with
\`RATES=100,1000,2200,3100,3700,4400,5300,6400 STEP_SECONDS=4 node --import tsx bench/probe.ts herald-uws\`
two replicas kept up to 4,400 messages/s (1.95M deliveries/s; 3,700 fell just short, 3,228 of
3,700 reached) with 1 ms, to 2,200 with 2 ms, and saturated from 2,200 (614k/s) with
\`BROADCAST_BATCH_MS=0\`. An idle replica adds no delay; at 100 msg/s
(\`LATENCY=1 REPEAT=2 RATES=100 node --import tsx bench/probe.ts herald-uws\`) p99 was 65 and 53 ms
with batching and 108 and 64 ms without, on a day when raw uWS measured 72 and 42 ms and one
replica 45 and 25 ms: within this machine's spread.

Tried and not kept: batching the publishing replica's writes to Redis (the socket corked until the
loop's check phase). At 2,500 messages/s it cut Redis's writes from 31k to 3.4k and its context
switches from 10.3k to 1.2k in 10 s, but the replicas' \`sendto\` calls rose from 660k to 1.15M for
the same deliveries, and in three alternating sweeps the 4,400 messages/s step delivered 1.84M,
1.99M and 1.71M/s with it against 1.59M, 1.61M and 1.81M/s without: inside the spread. ioredis
auto-pipelining, which batches the same way, did no better.

What still separates two replicas from the single process: a profile of one replica at 3,500
messages/s (\`RATES=2000,3500 node --import tsx bench/profile.ts\`, 1.74M deliveries/s) had the
core split 0.49 / 0.45 CPU-s/s between the replicas and 0.05 for Redis, and the profiled replica's
wall-clock samples 54 % idle (its turn went to the others), 20.5 % in socket writes to Redis (a
writer descheduled inside the call) and 8.3 % handing batches to uWS. Every message is parsed,
encoded and published twice (once per replica), travels through Redis, and comes back to the replica
that sent it, which decodes and discards it (the classic adapter subscribes to every room's
channel); the single-process ceiling pays none of this. On a machine where each replica has its
own cores these costs would not add up on one.

**What holds two replicas back is per-message cost, not batching or the publisher.** Probes on
a later day (2026-11-21, second session): with 256 publish requests in flight instead of 64
(\`IN_FLIGHT=256\`), two replicas still levelled off at 1.58–1.66M deliveries/s with every
message delivered and the publisher let through only 3,300–3,500 messages/s, so the window is not
what stops them; with \`BROADCAST_BATCH_MS\` 1, 3 and 8 they reached 1.52M, 1.40M and 1.46M, each
with about 3,000 messages/s let through, so above ~2,000 messages/s a replica's turns are already
longer than the window and the window no longer decides the batch. \`perf record -g\` of the
three server processes at 2,500 messages/s (6 s) put 46 % of the core's samples under
\`sendto\` (the loopback receive for the client included), 27 % in Node, V8 and JIT code, 8 % in
uWS and 6 % in Redis. The per-message part was then measured on its own, with 4 subscribers per
room (\`FANOUT=4 RATES=2000,5000,8000 STEP_SECONDS=6 node --import tsx bench/probe.ts herald-uws herald-uws-1 ceiling\`):
server CPU per message 403 / 188 / 123 µs for two replicas with Redis, 173 / 82 / 60 µs for one
replica, 64 / 40 / 34 µs for raw uWS. Every message is handled by each replica and by Redis, and
each of them is woken for it; on one core that adds up, and the section above turns it into the
ratio it allows. Corking the Redis publisher's socket until the check phase, tried again with this
more precise measure, changed nothing (123 and 125 µs per message at 8,000/s without, 125 and 124
with).

**The publisher's window moves the knees.** The publisher keeps a bounded number of requests in
flight and catches up after a delay, so a server that answers late receives the missed messages in
one burst. With 256 in flight (this benchmark's first setting) raw uWS and herald both tipped into
the slow regime between 1,500 and 4,400 messages/s; with 64 (the setting now) raw uWS kept up to the
highest rate probed, 5,300 messages/s (2.43M deliveries/s, p99 34 ms) while two herald replicas
saturated at 2,600 (1.0M at 2,200); with 32, two herald replicas reached 1.19M at 2,600 and were
then held by the window itself (1.29M at 3,100 asked, 2,587 reached, p99 33 ms, no collapse). Before
batching, none of the settings brought two replicas and Redis on one core near 80 % of the single
process.

**Memory per idle connection.** Measured on fresh processes: before this round herald held 10–13 KB
of RSS per idle connection (11.0 KB for one replica at 10k). The first version of this benchmark
measured after the load runs, inside heap those runs had already grown, and reported 4.3–4.7 KB
(and, for one stack, a negative number). \`node --import tsx bench/memory.ts [stacks]\` now
splits the figure by V8 heap space and can write heap snapshots (\`SNAPSHOT=<dir>\`). What it
showed, and what was changed, one replica at 10k connections each time:
- herald's own per-connection objects (eight event listeners and their closures, a socket middleware,
  the expiry timer's closures) were about 1.1 KB. It now keeps one event guard (a closure and a
  token bucket) that calls handlers shared by all connections, one shared \`disconnecting\`
  listener, and a timer only for tokens that expire.
- Socket.IO keeps each connection's upgrade request (with uWS, its request and response wrappers)
  and the whole handshake, every header and the \`auth\` payload with the token, for the
  connection's life; herald drops them once connected (src/realtime/handshake.ts). With a
  browser's headers and a real token this saves more than the harness's minimal handshake shows.
  Together: 11.1 → 9.2 KB.
- Socket.IO subscribes every WebSocket to a uWS topic named after its own id: one native topic per
  connection (about 600 B) for a room only that socket is in. herald unsubscribes it and delivers
  to id rooms directly (src/transport/uws-broadcast.ts).
- V8 doubled the replica's young generation (2 × 8 MB → 2 × 16 MB) while the connections opened,
  16 MB per replica, 1.7 KB per connection at 10k (3.4 KB for two replicas sharing 10k). Replicas
  now run with \`--max-semi-space-size=8\` (\`npm start\`, the Dockerfile's CMD): 9.0 → 7.9 KB for
  one replica, 11.0 → 8.4 KB for two. In \`bench/probe.ts herald-uws-1\` with
  \`RATES=100,1000,2000\`, run twice each way, the server core used 0.36/0.41 CPU-s per second at
  100 msg/s with the flag and 0.47/0.48 without, and deliveries were the same at every rate; p99
  at 100 msg/s was 22/26 ms with it and 16/14 ms without, within this setup's spread but noted.

What remains (a heap snapshot of one replica after these changes, 5.9 KB of JavaScript heap per
connection) is Socket.IO's and Engine.IO's per-socket state: their event listener tables and bound
functions on the transport, three \`Map\`s and three arrays allocated per socket, the ping timer,
the parser; plus about 1.5 KB of uWS's own per-socket memory, which raw uWS (1.6 KB per connection)
carries as well. The 10k figure includes the adapter's room maps growing; at 19,500 connections one
replica held 7.2 KB each.

Run to run, with this harness (before 2026-12-01, when client-bound steps were still counted):
raw uWS reached 3.70M, 3.68M, 3.64M, 2.44M, 2.24M, 3.06M and 2.85M deliveries/s in seven full runs, one herald replica 1.95M (before the broadcast
change), 3.06M, 3.47M, 2.99M, 2.00M, 2.50M and 2.91M, and two herald replicas with Redis 1.19M,
1.42M, 1.09M and 1.09M before batching, 1.28M, 1.39M and 1.63M with it (57 %, 46 % and 57 % of
raw uWS in the same run, 30–45 % before): a knee moves by one or two steps, as it depends on when
a stall first tips the stack into the slow regime, so ratios between stacks from a single run carry
that spread. The stock cluster's knee sits between the first two steps of the sweep, so its figure
moves by half: 98.5k deliveries/s in one run of 2026-11-21, 50k in the next (14.1× and 32.6×). The p99 of two replicas at 100 messages/s to 1,000 subscribers spreads as well: 51 and
42 ms in two runs of 2026-11-21, 66 ms in the third, and 58, 29 and 34 ms in three probes
right after it (\`LATENCY=1 REPEAT=3 RATES=10,100 node --import tsx bench/probe.ts herald-uws herald-uws-1-redis\`),
where one replica with Redis measured 43, 91 and 39 ms. Two replicas on the shared core sit at
the 50 ms target, on either side of it from run to run. The three runs with
batching also measured every uWS stack, raw uWS included, seconds behind at 1,000 msg/s to one room
of 1,000 (p50 2.0–6.7 s), where the run before measured 0.2–0.7 s: 1M deliveries/s to one room is
at or past every stack's knee here, and that column shows how far.
`;

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
    `As AnyCable's published benchmark did it (connections dropped every ~2 s while messages flow; they reported 84.6 % delivered for stock Socket.IO). The clients are stock socket.io-client 4.8 instances on WebSocket that reconnect by themselves (default backoff: 1 s ± 50 %) and join the room on \`connect\` unless \`socket.recovered\` is true: herald's through \`socket.emit('subscribe', { room })\` in a history room (\`HISTORY_ROOMS\`), the stock cluster's server joins the room named in the handshake, with \`connectionStateRecovery\` on (maxDisconnectionDuration 120 s), as a user would try it. A TCP relay in front of the servers (loadtest/harness/jitter.ts) hands new connections to the replicas in turn and resets every connection through it every ${f(r0.dropEveryMs * 0.8)}–${f(r0.dropEveryMs * 1.2)} ms. Delivered: distinct messages each client received over published × clients, counted ${'after'} publishing stops and the clients have reconnected (bounded wait).`,
    '',
    ...table(rows),
    '',
    ...rows.filter((r) => r.recovered === 0).flatMap((r) => [`${r.stack}: no reconnect came back with \`socket.recovered === true\`, so each client lost what was published while it was away (every reset is followed by socket.io-client's 0.5–1.5 s reconnection delay and a new handshake, out of a ~2 s cycle).${r.stack.startsWith('herald') ? (heraldRecovery === false ? ' The herald build measured had no built-in connection recovery (issue 18, `CONNECTION_RECOVERY_SECONDS`, was not in its src/); the scenario runs unchanged once it has.' : '') : ' Socket.IO\'s connection state recovery needs an adapter that can persist sessions; the Redis pub/sub adapter cannot.'}`, '']),
    ...later,
  ];
}

function markdown({ results, capacity: cap, sharded, compression, jitter, jitterHeraldRecovery, jitterSeparate, machine, seconds, generatedAt, shared, commit }: Run): string {
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
    `Latency is end to end: from the publisher's HTTP call to arrival at the client, 1,000 subscribers in one room (so 100 msg/s is 100,000 deliveries/s). Saturation: 2 rooms × 500 subscribers, publish rates from 100/s up, about 20 % apart past 1,000/s; a step is saturated when less than 90 % of what was published was delivered, or the publisher (64 requests in flight) got less than 90 % of the rate it asked for because the server answered slowly. The sweep stops after two saturated steps in a row; "deliveries/s at saturation" is the most at a step the stack kept up with and whose client core was not above ${f(CLIENT_BOUND * 100)} %. ⚑ marks a client-bound step: the client processes (2 workers and the publishing coordinator, all on CPU ${CLIENT_CPU}) used more than ${f(CLIENT_BOUND * 100)} % of their core over the step, so the step measures the harness as much as the server and is not counted as the server's ceiling. Missing / duplicates: over the three latency runs, every message checked by sequence number at every subscriber, against the deliveries owed. Soketi speaks the Pusher protocol: its clients are the harness's Pusher client (same raw WebSocket frames, counting and latency sampling) and its publisher signs each request (Pusher HTTP API, HMAC-SHA256) and sends it on a connection of its own, since soketi closes connections that pipeline. CPU per message: all of the stack's processes (Redis included) over the published messages, at a fan-out of 4 where deliveries cost little beside the HTTP request, the bus and each process's turn.`,
    '',
    '## Against the targets',
    '',
    `| target | measured | met |`,
    `| --- | --- | --- |`,
    `| herald (uWS) ≥ 8× the stock cluster's deliveries/s | ${clientLimited(heraldUws) ? '≥ ' : ''}${f(max(heraldUws))} vs ${f(max(stock))}: ${f(max(heraldUws) / max(stock), 1)}×; at any step kept up with, client-bound ones included: ${f(anyClientMax(heraldUws))} vs ${f(anyClientMax(stock))}, ${f(anyClientMax(heraldUws) / anyClientMax(stock), 1)}× | ${max(heraldUws) >= 8 * max(stock) ? 'yes' : `no${undecided(heraldUws)}`} |`,
    `| herald (uWS) ≥ 80 % of raw uWS | 2 replicas + Redis on the one server core: ${ratio(heraldUws)} (predicted from per-message cost: ${predicted(heraldUws)}); 1 replica + Redis: ${ratio(heraldOneRedis)} (${predicted(heraldOneRedis)}); 1 replica without Redis (the same single process as raw uWS): ${ratio(heraldOne)} (${predicted(heraldOne)}); at any step kept up with, client-bound ones included: ${modelRatio(heraldUws)}, ${modelRatio(heraldOneRedis)} and ${modelRatio(heraldOne)} | ${undecided(heraldUws, heraldOne, ceiling) ? `not decided: a counted ceiling here is the client's (raw uWS's steps from ${f(ceiling.saturation.steps.find((x) => x.client?.clientBound)?.rate)} msg/s up were client-bound, see ⚑); with client-bound steps included, ${anyClientMax(heraldUws) >= 0.8 * modelMax ? 'yes' : 'no'} (2 replicas), ${anyClientMax(heraldOne) >= 0.8 * modelMax ? 'yes' : 'no'} (1 replica)` : `${max(heraldUws) >= 0.8 * max(ceiling) ? 'yes' : 'no'} (2 replicas); ${max(heraldOne) >= 0.8 * max(ceiling) ? 'yes' : 'no'} (1 replica)`} |`,
    `| p99 ≤ 50 ms at 100k deliveries/s (100 msg/s to 1,000 subscribers) | ${latencyAt(heraldUws, 100)?.p99 ?? 'n/a'} ms | ${(latencyAt(heraldUws, 100)?.p99 ?? Infinity) <= 50 ? 'yes' : 'no'} |`,
    `| whole-stack CPU per delivery at 100k deliveries/s ≤ 1.3× raw uWS's (2 replicas + Redis) | ${f(heraldUws.cpuMsPer1000Deliveries, 2)} vs ${f(ceiling.cpuMsPer1000Deliveries, 2)} ms per 1,000: ${f((heraldUws.cpuMsPer1000Deliveries ?? NaN) / (ceiling.cpuMsPer1000Deliveries ?? NaN), 2)}× | ${(heraldUws.cpuMsPer1000Deliveries ?? Infinity) <= 1.3 * (ceiling.cpuMsPer1000Deliveries ?? 0) ? 'yes' : 'no: the Redis hop is system calls, not JavaScript (the profile below: each replica\'s time goes to writing each PUBLISH and to waking the other processes on the one core); this round\'s adapter skips decoding a replica\'s own echoed broadcasts, which the figures do not show apart from the spread, and stopping the echoes or writing one PUBLISH per turn was not done'} |`,
    `| p99 ≤ 20 ms at 100k deliveries/s (2 replicas + Redis) | ${latencyAt(heraldUws, 100)?.p99 ?? 'n/a'} ms${clientMark(heraldUws.latency.find((x) => x.rate === 100)?.client)} | ${(latencyAt(heraldUws, 100)?.p99 ?? Infinity) <= 20 ? 'yes' : 'no: at this rate the client core is above 80 % (⚑), so the p99 is the harness\'s as much as herald\'s; single runs here spread from 39 to 103 ms (bench/probe.ts LATENCY=1, quiet machine)'} |`,
    `| ≤ 8 KB RSS per idle connection | ${f(heraldUws.idle.bytesPerConnection)} B | ${(heraldUws.idle.bytesPerConnection ?? Infinity) <= 8192 ? 'yes' : 'no'} |`,
    `| 100k idle connections on one replica | ${f(cap.connected)} held (${f(cap.bytesPerConnection)} B each); stopped by the per-process file-descriptor hard limit of ${f(cap.fdLimit)}, which cannot be raised here (setrlimit: Operation not permitted) | no (limit of this machine) |`,
    '',
    '## Why two replicas on one core stay below 80 % of raw uWS',
    '',
    `Raw uWS spends its whole core on ${f(modelMax)} deliveries/s, ${f(1e6 / modelMax, 3)} µs each (the most it delivered at a step it kept up with${ceiling.saturation.steps.some((x) => x.client?.clientBound) ? ', a client-bound one: the client core was the limit, so the cost per delivery is an upper bound' : ''}). At 80 % of that, deliveries alone take 80 % of the core, which leaves ${f(budgetUs)} µs for everything else a ${SATURATION_FANOUT}-wide message costs beyond what it costs raw uWS. Measured beyond raw uWS\'s ${f(ceiling.perMessage.cpuUsPerMessage)} µs per message (last column above): one replica ${f(extraUs(heraldOne))} µs, one replica with Redis ${f(extraUs(heraldOneRedis))} µs, two replicas with Redis ${f(extraUs(heraldUws))} µs. With deliveries at raw uWS\'s cost, those leave room for ${predicted(heraldOne)}, ${predicted(heraldOneRedis)} and ${predicted(heraldUws)} of raw uWS; the sweep measured ${modelRatio(heraldOne)}, ${modelRatio(heraldOneRedis)} and ${modelRatio(heraldUws)} (client-bound steps included). A cluster handles every message in every replica and in Redis, and each of them wakes for it; here all of that shares the one core that raw uWS has to itself. On a machine where the replicas and Redis have cores of their own, each replica pays its own per-message cost on its own core.`,
    '',
    ...(soketiRatios(results).length
      ? [
          '## herald against soketi',
          '',
          'Soketi 1.6.1 (Pusher protocol, also on uWebSockets.js, scaling through its Redis adapter) in the same run, on the same core, with the same scenarios. A ratio above 1 is herald\'s figure over soketi\'s; whether that is better depends on the figure (said in each row).',
          '',
          '| figure | herald | soketi | herald / soketi |',
          '| --- | --- | --- | --- |',
          ...soketiRatios(results),
          '',
        ]
      : []),
    '## Saturation steps',
    '',
    `Each step: publish rate asked → deliveries/s (p99 ms), the client core's share used by the client processes and the core's busy share whoever used it (other sessions' tests ran on this machine); ✗ marks a saturated step, with the publish rate the server let the publisher reach; ⚑ a client-bound step (client processes above ${f(CLIENT_BOUND * 100)} % of their core).`,
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
    ...jitterSection(jitter, jitterHeraldRecovery, jitterSeparate),
    ...compressionSection(compression),
    RECOVERY_COST,
    HARNESS_FINDINGS,
    PROFILE_FINDINGS,
  ];
  return lines.join('\n');
}

/**
 * What connection recovery (on by default, in every herald row above) costs, from probes run
 * beside this bench on the same machine; not regenerated by it.
 */
const RECOVERY_COST = [
  '## What connection recovery costs (CONNECTION_RECOVERY_SECONDS 0 against 120, 2026-12-01)',
  '',
  "Every herald row above runs with recovery on (the default, 120 s): every event gets an offset, history-room deliveries are journaled, and a dropped connection's session is written to Redis. Measured with the probes, alternating off and on, two runs each, herald 2 replicas + Redis on uWS, on a quiet machine:",
  '',
  '| figure | off | on | command |',
  '| --- | --- | --- | --- |',
  '| server CPU µs per message (5,000 msg/s, 2 rooms × 4) | 188 / 194 | 193 / 191 | `CONNECTION_RECOVERY_SECONDS=0` or `120`, `FANOUT=4 RATES=5000 STEP_SECONDS=8 node --import tsx bench/probe.ts herald-uws` |',
  '| server CPU ms per 1,000 deliveries (100 msg/s × 1,000 subscribers) | 9.56 / 10.82 | 9.50 / 10.46 | the same with `LATENCY=1 RATES=100` |',
  '| RSS per idle connection (10k, fresh processes) | 8,209 / 8,297 B | 8,099 / 8,233 B | `node --import tsx bench/memory.ts herald-uws` |',
  '| V8 heap used per idle connection | 6,840 / 7,332 B | 7,560 / 7,851 B | the same |',
  '',
  "Both CPU figures and RSS are inside the run-to-run spread; the heap holds about 500 B more per connection with recovery on (each socket's private session id among it), which RSS did not show. The jitter table above is what it buys.",
  '',
].join('\n');

/** WS_COMPRESSION off and on (bench/compression.ts); absent from results written before it existed. */
function compressionSection(rows: CompressionRow[] | undefined): string[] {
  if (!rows || rows.length === 0) return [];
  const r0 = rows[0]!;
  return [
    `## Compression on the wire (\`WS_COMPRESSION\`, ${f(r0.subscribers)} subscribers of one room, one replica, ${f(r0.published)} score updates)`,
    '',
    `A live-score update of about 400 bytes of JSON (a ${r0.frameBytes}-byte Socket.IO frame) to clients offering permessage-deflate, as browsers do, each message inflated on its own (bench/compression.ts). Bytes on the wire: what the clients' sockets read, frame headers included. Server CPU: the replica's, HTTP publishes included. RSS: the replica's growth per connection over the run. The last column shows whether the replica kept up.`,
    '',
    '| transport | compression | negotiated | bytes on the wire per delivery | server CPU µs per delivery | RSS growth per connection | last delivery after the last publish |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.transport} | ${r.compression} | ${f(r.negotiated)} / ${f(r.subscribers)} | ${f(r.wireBytesPerDelivery, 1)} | ${f(r.serverCpuUsPerDelivery, 1)} | ${f(r.rssBytesPerConnection / 1024, 1)} KiB | ${f(r.drainSeconds, 1)} s |`),
    '',
  ];
}

interface Run {
  machine: string;
  generatedAt: string;
  seconds: number;
  results: Awaited<ReturnType<typeof measureStack>>[];
  capacity: Awaited<ReturnType<typeof capacity>>;
  sharded: Awaited<ReturnType<typeof shardedComparison>>;
  compression?: CompressionRow[];
  jitter?: JitterRow[];
  /** Whether herald's src/ knew CONNECTION_RECOVERY_SECONDS (issue 18's built-in recovery) when the run measured it. */
  jitterHeraldRecovery?: boolean;
  /** A jitter run made later on its own (`bench/jitter.ts --record`), shown beside this run's. */
  jitterSeparate?: SeparateJitterRun;
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
    console.log('# bench: jitter (connections reset every ~2 s)');
    const jitter = await jitterComparison(undefined, QUICK ? { ...JITTER_DEFAULTS, clients: 50, seconds: 6 } : JITTER_DEFAULTS);
    console.log(JSON.stringify(jitter));
    const jitterHeraldRecovery = sourceMentions('CONNECTION_RECOVERY_SECONDS');
    const commit = srcCommit();
    const run: Run = { commit, machine, generatedAt: new Date().toISOString(), seconds: (Date.now() - startedAt) / 1000, shared: sharedNote(), results, capacity: cap, sharded, compression, jitter, jitterHeraldRecovery };
    writeFileSync(join(ROOT, 'bench/results.json'), JSON.stringify(run, null, 2));
    writeOutputs(run);
    const seconds = run.seconds;
    console.log(`# bench: done in ${seconds.toFixed(0)} s; wrote BENCHMARKS.md`);
  } finally {
    await workers.stop();
  }
}

await main();
