/**
 * The scale scenario (issue 30): N replicas + Redis on loopback, fans of a live-score page in
 * several client processes, then connect → idle → broadcast → storms (kill -9, SIGTERM), each
 * measured. Everything it starts it stops, bounded in time. `bench/scale/run.ts` runs the 100k
 * version; `test/scale.test.ts` a small one.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { FanPool, type PhaseTotals, type PoolReport } from '../../loadtest/harness/fans/pool.js';
import { addCounts } from '../../loadtest/harness/fans/stats.js';
import { cpuBusySeconds, loopbackAddresses } from '../../loadtest/harness/workers.js';
import { cpuSeconds, eventLoopLagMax, listenOverflows, pssBytes, readiness, redisCommands, rssBytes, countsByLabel, startCeiling, startRedis, startReplica, type Replica } from './cluster.js';
import { ScalePublisher, type Rates } from './publisher.js';

export interface ScaleOptions {
  /**
   * What the fans connect to: herald replicas (default), or the same number of raw uWS processes
   * (`ceiling`, bench/uws-ceiling.cjs: no Redis between them, no auth, history or recovery; a
   * kill -9 storm only, whose fans come back without what was published while they were out),
   * the transport's ceiling on this machine.
   */
  server?: 'herald' | 'ceiling';
  connections: number;
  replicas: number;
  clientProcesses: number;
  matches: number;
  idleSeconds: number;
  /** After the idle window, the replicas' RSS is the lowest reading over this long (`settledRss`). */
  rssSettleSeconds: number;
  broadcastSeconds: number;
  /** Each storm publishes for this long; the replica goes at `stormAtSeconds` into it. */
  stormSeconds: number;
  stormAtSeconds: number;
  storms: ('kill' | 'drain')[];
  rates: Rates;
  /** Publishing while the storms run (default: `rates`). */
  stormRates?: Rates;
  /** Extra herald settings for every replica. */
  env: Record<string, string>;
  /** Source addresses 127.0.0.1..n for the clients. */
  localAddresses: number;
  /** Give up waiting for everyone to be connected (or back) after this long. */
  connectTimeoutSeconds: number;
  backTimeoutSeconds: number;
  log(line: string): void;
}

export interface Storm {
  kind: 'kill' | 'drain';
  victim: string;
  victimConnections: number;
  droppedFans: number;
  /** First drop (the signal) to the last dropped fan live again; undefined if not everyone came back in time. */
  allBackSeconds: number | undefined;
  /** Wall-clock ms of the signal. */
  signalAt: number;
  /** Seconds after the signal by which half, 90 % and 99 % of the dropped fans were live again (100 ms steps); undefined: not that many came back. */
  backSeconds: { p50: number | undefined; p90: number | undefined; p99: number | undefined };
  reconnects: number;
  /** Attempts the balancer sent on to another replica after a refused TCP connection (unseen by the client). */
  redispatched: number;
  refusals: Record<string, number>;
  sessionsRecovered: number;
  sinceRecovered: number;
  sinceNotRecovered: number;
  resets: number;
  /** Dropped fans that hold every history message at the end of the run. */
  droppedComplete: number;
  healthy: { p50: number; p99: number; max: number; samples: number };
  redis: { cpuShare: number; commandsPerSecond: number; seconds: number };
  /** Cores used from the signal until everyone was back: surviving replicas, Redis, clients, the whole machine. */
  cores: CpuSplit;
  /** The surviving replicas' `herald_session_recovery_total` over the storm, by outcome: what became of the sessions the fans offered. */
  sessionOutcomes: Record<string, number>;
  /** The surviving replicas' `herald_connections_refused_total` over the storm, by reason (capacity, overloaded, rate_limited, …). */
  refusedByReplicas?: Record<string, number>;
  /** Connections the kernel dropped from a full listen queue from the signal until everyone was back (machine-wide, `listenOverflows`). */
  listenOverflows: number;
}

export interface Broadcast {
  name: string;
  rates: Rates;
  seconds: number;
  broadcasts: number;
  /** Broadcasts every fan received live. */
  complete: number;
  lastDeliveryMs: { p50: number; p99: number; max: number };
  perDeliveryMs: { p50: number; p99: number; max: number };
  deliveries: number;
  /** Deliveries over the phase's wall time, its backlog included. */
  deliveriesPerSecond: number;
  cpuUsPerDelivery: number;
  replicasCpuUsPerDelivery: number;
  redisCpuUsPerPublish: number;
  publishes: number;
  eventLoopLagMaxMs: number;
  /** Cores used over the phase, until the last delivery. */
  cores: CpuSplit;
}

export interface ScaleResult {
  options: Omit<ScaleOptions, 'log'>;
  connect: { connections: number; live: number; seconds: number; ratePerSecond: number; peakPerSecond: number; refusals: Record<string, number>; listenOverflows: number };
  /**
   * The replicas' memory with everyone connected and idle: RSS summed (what the target is stated
   * in; it counts the pages the processes share, the node binary's code, once per process) and
   * PSS summed (each page once), each also per connection.
   */
  memory: {
    replicasRssBytes: number;
    baselineRssBytes: number;
    perConnectionBytes: number;
    marginalPerConnectionBytes: number;
    replicasPssBytes: number;
    pssPerConnectionBytes: number;
    /** The lowest reading over this long after the idle window (`settledRss`); absent in results from before it waited. */
    settledAfterSeconds?: number;
  };
  idle: { seconds: number; replicaCpuShares: number[]; redisCpuShare: number; clientsCpuShare: number };
  /** The broadcast phases: at `rates`, then at `stormRates` when those differ. */
  broadcasts: Broadcast[];
  storms: Storm[];
  totals: { missingAll: number; missingMatch: number; notLiveAtEnd: number; missingOnLiveFans: number; duplicates: number; publishFailures: Record<string, number>; userReceived: number; userExpected: number };
  replicaProblems: string[];
}

/** How long the balancer's health check takes to see a replica gone or draining (the shipped HAProxy: `inter 1s fall 2`). */
export const HEALTH_CHECK_MS = 2000;

/**
 * herald's DRAIN_DELAY_SECONDS for that balancer, sized as docs/reference/configuration.md says and
 * deploy/compose/compose.yaml sets it for the shipped HAProxy (inter × fall + inter = 3 s): a
 * draining replica keeps accepting until the balancer has taken it out, so the drained fans'
 * reconnects, which leastconn sends to the emptying replica until then, are not refused (403
 * `draining`). "All back" after a drain counts from the signal, so it includes this delay.
 */
export const DRAIN_DELAY_SECONDS = '3';

export const JWT_SECRET = 'scale-scenario-secret-0123456789abcdef';
export const PUBLISH_KEY = 'scale-publish-key-0123456789';

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
};

/** CPU seconds of a set of processes, to difference over a window. */
const cpuOf = (pids: number[]) => sum(pids.map(cpuSeconds));

/**
 * Waits until the fans stop receiving (what was published has all arrived, or what is left is
 * stuck), bounded: deliveries in the current phase unchanged over a second, at most `maxMs`.
 */
async function settle(pool: FanPool, maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  let last = -1;
  for (;;) {
    const { delivered } = await pool.status();
    if (delivered === last || Date.now() > deadline) return;
    last = delivered;
    await delay(1000);
  }
}

/** Where the machine's CPU went over a window, in cores: replicas, Redis, the client processes (and this coordinator), and everything (others included). */
export interface CpuSplit {
  /** Seconds of wall time the split was taken over. */
  wall: number;
  replicas: number;
  redis: number;
  clients: number;
  machine: number;
}

/** Reads CPU seconds now; `split(a, b)` gives the cores used between two readings. */
function cpuReading(replicas: number[], redis: number, clients: number[]): { at: number } & Omit<CpuSplit, 'wall'> {
  const cores = Array.from({ length: 64 }, (_, i) => cpuBusySeconds(i)).filter((x): x is number => x !== undefined);
  return { at: Date.now(), replicas: cpuOf(replicas), redis: cpuSeconds(redis), clients: cpuOf([...clients, process.pid]), machine: sum(cores) };
}
function split(a: { at: number } & Omit<CpuSplit, 'wall'>, b: { at: number } & Omit<CpuSplit, 'wall'>): CpuSplit {
  const wall = Math.max(0.001, (b.at - a.at) / 1000);
  return { wall, replicas: (b.replicas - a.replicas) / wall, redis: (b.redis - a.redis) / wall, clients: (b.clients - a.clients) / wall, machine: (b.machine - a.machine) / wall };
}

export async function runScale(o: ScaleOptions): Promise<ScaleResult> {
  const redis = await startRedis();
  const replicas: Replica[] = [];
  let pool: FanPool | undefined;
  let publisher: ScalePublisher | undefined;
  const settings = { redisUrl: redis.url, jwtSecret: JWT_SECRET, publishKey: PUBLISH_KEY, env: { DRAIN_DELAY_SECONDS, ...o.env } };
  const ceiling = o.server === 'ceiling';
  // The ceiling has no /metrics to read a lag from.
  const lag = (r: Replica) => (ceiling ? Promise.resolve(undefined) : eventLoopLagMax(r, PUBLISH_KEY));
  try {
    for (let i = 0; i < o.replicas; i++) replicas.push(await (ceiling ? startCeiling() : startReplica(settings)));
    o.log(`# ${o.replicas} ${ceiling ? 'raw uWS processes (the ceiling)' : 'replicas + redis-server'} up; starting ${o.clientProcesses} client processes`);
    const baselineRss = sum(replicas.map((r) => rssBytes(r.pid)));
    pool = await FanPool.start(o.clientProcesses);
    // herald's replicas share rooms through Redis: publishes go to two of them, in turn. The
    // ceiling's processes share nothing: each publish goes to every one.
    publisher = ceiling
      ? new ScalePublisher(replicas.map((r) => r.url), PUBLISH_KEY, o.matches, o.connections, true)
      : new ScalePublisher(replicas.slice(0, 2).map((r) => r.url), PUBLISH_KEY, o.matches, o.connections);

    // Connect.
    const connectStarted = Date.now();
    const overflowsBefore = listenOverflows();
    await pool.open(o.connections, {
      urls: replicas.map((r) => r.url),
      matches: o.matches,
      jwtSecret: JWT_SECRET,
      localAddresses: loopbackAddresses(o.localAddresses),
      concurrency: 64,
      forwardedFor: true,
    });
    let status = await pool.status();
    const connectDeadline = Date.now() + o.connectTimeoutSeconds * 1000;
    while (status.live < o.connections && Date.now() < connectDeadline) {
      await delay(500);
      status = await pool.status();
      o.log(`# connect: ${status.live} / ${o.connections} live after ${((Date.now() - connectStarted) / 1000).toFixed(1)} s ${JSON.stringify(status.states)}`);
    }
    const connectSeconds = (status.lastFirstLiveAt - connectStarted) / 1000;
    const connectOverflows = listenOverflows() - overflowsBefore;
    const connectPhase = { live: status.live, perSecond: status.firstLivePerSecond };
    if (status.live < o.connections) throw new Error(`only ${status.live} of ${o.connections} fans connected in ${o.connectTimeoutSeconds} s`);

    // Idle: pings only.
    await pool.phase('idle');
    const marks = replicas.map((r) => cpuSeconds(r.pid));
    const redisMark = cpuSeconds(redis.pid);
    const clientsMark = cpuOf(pool.pids);
    const at = Date.now();
    await delay(o.idleSeconds * 1000);
    const idleWall = (Date.now() - at) / 1000;
    const idle = { seconds: idleWall, replicaCpuShares: replicas.map((r, i) => (cpuSeconds(r.pid) - marks[i]!) / idleWall), redisCpuShare: (cpuSeconds(redis.pid) - redisMark) / idleWall, clientsCpuShare: (cpuOf(pool.pids) - clientsMark) / idleWall };
    const { bytes: replicasRss, waitedSeconds: rssSettledAfter, readings } = await settledRss(() => sum(replicas.map((r) => rssBytes(r.pid))), o.rssSettleSeconds);
    o.log(`# RSS every ${RSS_READ_EVERY_S} s after the idle window (MiB): ${readings.map((b) => (b / 2 ** 20).toFixed(0)).join(' ')}`);
    const replicasPss = sum(replicas.map((r) => pssBytes(r.pid)));
    o.log(`# idle: replicas ${idle.replicaCpuShares.map((c) => `${(c * 100).toFixed(1)}%`).join(' ')}, redis ${(idle.redisCpuShare * 100).toFixed(1)}%; RSS ${(replicasRss / 2 ** 20).toFixed(0)} MiB (the lowest over ${rssSettledAfter} s after the idle window)`);

    // Broadcasts: at the asked rates, then at the storms' (a rate this machine can carry, if the first is not).
    const replicaPids = () => replicas.map((r) => r.pid);
    const broadcast = async (name: string, rates: Rates): Promise<BroadcastRaw> => {
      await pool!.phase(name);
      for (const r of replicas) await lag(r);
      const read = cpuReading(replicaPids(), redis.pid, pool!.pids);
      const cpu = { replicas: cpuOf(replicaPids()), redis: cpuSeconds(redis.pid) };
      const count = () => publisher!.accepted.all + sum(Object.values(publisher!.accepted.match)) + sum(Object.values(publisher!.accepted.user));
      const before = count();
      const seqFrom = publisher!.sentAt.size;
      await publisher!.run(o.broadcastSeconds, rates);
      // A backlog (a rate over what the machine carries) is delivered before the next phase starts.
      await settle(pool!, 600_000);
      const raw: BroadcastRaw = {
        name,
        rates,
        cpu: { replicas: cpuOf(replicaPids()) - cpu.replicas, redis: cpuSeconds(redis.pid) - cpu.redis, cores: split(read, cpuReading(replicaPids(), redis.pid, pool!.pids)) },
        publishes: count() - before,
        seqs: [...publisher!.sentAt.keys()].slice(seqFrom),
        lags: await Promise.all(replicas.map(lag)),
      };
      // Said now, so a run whose storms go wrong still shows the steady state.
      const b = (await pool!.report(publisher!.accepted)).phases.get(name)!;
      const last = raw.seqs.flatMap((seq) => (b.broadcasts.has(seq) ? [b.broadcasts.get(seq)!.lastAt - publisher!.sentAt.get(seq)!] : []));
      const c = raw.cpu.cores;
      o.log(`# ${name}: ${raw.seqs.length} broadcasts and ${raw.publishes} publishes in ${o.broadcastSeconds} s; last delivery p50 ${quantile(last, 0.5)} ms p99 ${quantile(last, 0.99)} ms; each delivery p99 ${b.latency.quantile(0.99)} ms; ${b.delivered} deliveries; cores: replicas ${c.replicas.toFixed(2)} Redis ${c.redis.toFixed(2)} clients ${c.clients.toFixed(2)} machine ${c.machine.toFixed(2)}; lag max ${Math.max(0, ...raw.lags.filter((l): l is number => l !== undefined)).toFixed(2)} s`);
      return raw;
    };
    const broadcasts = [await broadcast('broadcast', o.rates)];
    if (o.stormRates && o.stormRates.broadcast !== o.rates.broadcast) broadcasts.push(await broadcast('broadcast-storm-rate', o.stormRates));

    // Storms.
    const storms: Omit<Storm, 'healthy' | 'droppedComplete' | 'reconnects' | 'redispatched' | 'refusals' | 'sessionsRecovered' | 'sinceRecovered' | 'sinceNotRecovered' | 'resets' | 'backSeconds'>[] = [];
    // The ceiling has nothing to drain: SIGTERM would only be a kill -9 that closes its sockets.
    for (const kind of ceiling ? o.storms.filter((k) => k === 'kill') : o.storms) {
      // The replica holding the most connections goes; the publisher uses the others.
      const held = await Promise.all(replicas.map(async (r) => (await readiness(r))?.connections ?? 0));
      const victim = replicas[held.indexOf(Math.max(...held))]!;
      const others = replicas.filter((r) => r !== victim).map((r) => r.url);
      publisher.target(ceiling ? others : others.slice(0, 2));
      await pool.phase(`${kind}-before`);
      const publishing = publisher.run(o.stormSeconds, o.stormRates ?? o.rates);
      await delay(o.stormAtSeconds * 1000);
      const victimConnections = (await readiness(victim))?.connections ?? 0;
      if (victimConnections === 0) {
        o.log(`# ${kind}: ${victim.id} did not say how many connections it holds; storm skipped`);
        await publishing;
        continue;
      }
      await pool.phase(`${kind}-storm`);
      const survivors = () => replicaPids().filter((p) => p !== victim.pid);
      // The ceiling has no /metrics.
      const counters = () =>
        Promise.all(
          (ceiling ? [] : replicas.filter((r) => r !== victim)).map(async (r) => ({
            sessions: await countsByLabel(r, PUBLISH_KEY, 'herald_session_recovery_total', 'outcome'),
            refused: await countsByLabel(r, PUBLISH_KEY, 'herald_connections_refused_total', 'reason'),
          })),
        );
      const countersBefore = await counters();
      const mark = { at: Date.now(), redisCpu: cpuSeconds(redis.pid), commands: await redisCommands(redis), read: cpuReading(survivors(), redis.pid, pool.pids), overflows: listenOverflows() };
      victim.signal(kind === 'kill' ? 'SIGKILL' : 'SIGTERM');
      o.log(`# ${kind}: ${victim.id} (${victim.url}) with ${victimConnections} connections`);
      const checked = delay(HEALTH_CHECK_MS).then(() => pool!.urls(replicas.filter((r) => r !== victim).map((r) => r.url)));
      const deadline = Date.now() + o.backTimeoutSeconds * 1000;
      for (;;) {
        await delay(250);
        status = await pool.status();
        if ((status.droppedInPhase >= victimConnections && status.live === o.connections) || Date.now() > deadline) break;
        if (Date.now() - mark.at > 5000) o.log(`# ${kind}: ${status.live} / ${o.connections} live ${JSON.stringify(status.states)}`);
      }
      const back = status.live === o.connections && status.droppedInPhase >= victimConnections;
      const end = { at: Date.now(), redisCpu: cpuSeconds(redis.pid), commands: await redisCommands(redis), read: cpuReading(survivors(), redis.pid, pool.pids), overflows: listenOverflows() };
      const wall = (end.at - mark.at) / 1000;
      o.log(`# ${kind}: ${status.droppedInPhase} dropped, ${back ? `all back ${((status.lastBackAt - mark.at) / 1000).toFixed(1)} s after the signal` : `NOT all back: ${status.live} / ${o.connections} live`}`);
      const countersAfter = await counters();
      /** What `which` counted on the survivors over the storm, without the zeros. */
      const overStorm = (which: 'sessions' | 'refused') => {
        const sum: Record<string, number> = {};
        countersAfter.forEach((after, i) => {
          for (const [k, v] of Object.entries(after[which])) sum[k] = (sum[k] ?? 0) + v - (countersBefore[i]?.[which][k] ?? 0);
        });
        return Object.fromEntries(Object.entries(sum).filter(([, v]) => v > 0));
      };
      await checked;
      await pool.phase(`${kind}-after`);
      await publishing;
      await settle(pool, 60_000);
      storms.push({
        kind,
        victim: victim.id,
        victimConnections,
        droppedFans: status.droppedInPhase,
        allBackSeconds: back ? (status.lastBackAt - mark.at) / 1000 : undefined,
        signalAt: mark.at,
        redis: { cpuShare: (end.redisCpu - mark.redisCpu) / wall, commandsPerSecond: (end.commands - mark.commands) / wall, seconds: wall },
        cores: split(mark.read, end.read),
        sessionOutcomes: overStorm('sessions'),
        refusedByReplicas: overStorm('refused'),
        listenOverflows: end.overflows - mark.overflows,
      });
      // The orchestrator replaces the replica; the balancer learns the new address.
      await victim.exited;
      replicas.splice(replicas.indexOf(victim), 1, await (ceiling ? startCeiling() : startReplica(settings)));
      await pool.urls(replicas.map((r) => r.url));
    }

    const report = await pool.report(publisher.accepted);
    const problems = replicas.flatMap((r) => r.problems.map((p) => `${r.id}: ${p}`));
    return assemble(o, {
      connectStarted, connectSeconds, connectOverflows, connectPhase, report, idle, baselineRss, replicasRss, replicasPss, rssSettledAfter,
      broadcasts, sentAt: publisher.sentAt,
      storms, publishFailures: publisher.failures, problems,
    });
  } finally {
    publisher?.close();
    await pool?.stop();
    for (const r of replicas) r.signal('SIGKILL');
    await Promise.all(replicas.map((r) => r.exited));
    await redis.stop();
  }
}

interface BroadcastRaw {
  name: string;
  rates: Rates;
  cpu: { replicas: number; redis: number; cores: CpuSplit };
  publishes: number;
  seqs: number[];
  lags: (number | undefined)[];
}

interface Raw {
  connectStarted: number;
  connectSeconds: number;
  connectOverflows: number;
  connectPhase: { live: number; perSecond: Record<string, number> };
  report: PoolReport;
  idle: ScaleResult['idle'];
  baselineRss: number;
  replicasRss: number;
  replicasPss: number;
  rssSettledAfter: number;
  broadcasts: BroadcastRaw[];
  sentAt: Map<number, number>;
  storms: Omit<Storm, 'healthy' | 'droppedComplete' | 'reconnects' | 'redispatched' | 'refusals' | 'sessionsRecovered' | 'sinceRecovered' | 'sinceNotRecovered' | 'resets' | 'backSeconds'>[];
  publishFailures: Record<string, number>;
  problems: string[];
}

const pct = (h: PhaseTotals['latency']) => ({ p50: h.quantile(0.5), p99: h.quantile(0.99), max: h.max, samples: h.total });

/** Two phases' counts by key, added. */
function summed(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  addCounts(out, a);
  addCounts(out, b);
  return out;
}

/** From fans back per 100 ms: seconds after `signalAt` by which half, 90 % and 99 % of `dropped` were back. */
export function backCurve(per100ms: Record<string, number>, signalAt: number, dropped: number): Storm['backSeconds'] {
  const slots = Object.entries(per100ms).map(([k, n]) => [Number(k), n] as const).sort((a, b) => a[0] - b[0]);
  const by = (q: number) => {
    let sum = 0;
    for (const [slot, n] of slots) if ((sum += n) >= q * dropped) return Math.max(0, ((slot + 1) * 100 - signalAt) / 1000);
    return undefined;
  };
  return { p50: by(0.5), p90: by(0.9), p99: by(0.99) };
}

function assemble(o: ScaleOptions, r: Raw): ScaleResult {
  const phase = (name: string) => r.report.phases.get(name)!;
  const connect = phase('connect');
  const { log: _, ...options } = o;
  return {
    options,
    connect: {
      connections: o.connections,
      live: r.connectPhase.live,
      seconds: r.connectSeconds,
      ratePerSecond: o.connections / Math.max(0.001, r.connectSeconds),
      peakPerSecond: Math.max(0, ...Object.values(r.connectPhase.perSecond)),
      refusals: connect.refusals,
      listenOverflows: r.connectOverflows,
    },
    memory: {
      replicasRssBytes: r.replicasRss,
      baselineRssBytes: r.baselineRss,
      perConnectionBytes: r.replicasRss / o.connections,
      marginalPerConnectionBytes: (r.replicasRss - r.baselineRss) / o.connections,
      replicasPssBytes: r.replicasPss,
      pssPerConnectionBytes: r.replicasPss / o.connections,
      settledAfterSeconds: r.rssSettledAfter,
    },
    idle: r.idle,
    broadcasts: r.broadcasts.map((x) => {
      const b = phase(x.name);
      const lastDelivery = x.seqs.flatMap((seq) => {
        const got = b.broadcasts.get(seq);
        return got ? [got.lastAt - r.sentAt.get(seq)!] : [];
      });
      const wall = x.cpu.cores.wall;
      return {
        name: x.name,
        rates: x.rates,
        seconds: o.broadcastSeconds,
        broadcasts: x.seqs.length,
        complete: x.seqs.filter((seq) => b.broadcasts.get(seq)?.fans === o.connections).length,
        lastDeliveryMs: { p50: quantile(lastDelivery, 0.5), p99: quantile(lastDelivery, 0.99), max: Math.max(...lastDelivery) },
        perDeliveryMs: pct(b.latency),
        deliveries: b.delivered,
        deliveriesPerSecond: b.delivered / wall,
        cpuUsPerDelivery: ((x.cpu.replicas + x.cpu.redis) / Math.max(1, b.delivered)) * 1e6,
        replicasCpuUsPerDelivery: (x.cpu.replicas / Math.max(1, b.delivered)) * 1e6,
        redisCpuUsPerPublish: (x.cpu.redis / Math.max(1, x.publishes)) * 1e6,
        publishes: x.publishes,
        eventLoopLagMaxMs: Math.max(0, ...x.lags.filter((l): l is number => l !== undefined)) * 1000,
        cores: x.cpu.cores,
      };
    }),
    storms: r.storms.map((s) => {
      const storm = phase(`${s.kind}-storm`);
      const after = phase(`${s.kind}-after`);
      return {
        ...s,
        reconnects: storm.reconnects + after.reconnects,
        redispatched: storm.redispatched + after.redispatched,
        refusals: summed(storm.refusals, after.refusals),
        sessionsRecovered: storm.sessionsRecovered + after.sessionsRecovered,
        sinceRecovered: storm.sinceRecovered + after.sinceRecovered,
        sinceNotRecovered: storm.sinceNotRecovered + after.sinceNotRecovered,
        resets: storm.resets + after.resets,
        droppedComplete: r.report.droppedComplete[`${s.kind}-storm`] ?? 0,
        healthy: pct(storm.healthyLatency),
        backSeconds: backCurve(summed(storm.backPer100ms, after.backPer100ms), s.signalAt, s.droppedFans),
      };
    }),
    totals: {
      missingAll: r.report.missingAll,
      missingMatch: r.report.missingMatch,
      notLiveAtEnd: r.report.notLive,
      missingOnLiveFans: r.report.missingOnLive,
      duplicates: r.report.duplicates,
      publishFailures: r.publishFailures,
      userReceived: r.report.userReceived,
      userExpected: r.report.userExpected,
    },
    replicaProblems: r.problems,
  };
}

/** How often `settledRss` reads. */
const RSS_READ_EVERY_S = 5;

/**
 * RSS once the connect storm's garbage is given back: the lowest of readings every
 * RSS_READ_EVERY_S over `seconds` (read at once when 0). V8 returns the heap a storm grew in steps,
 * over tens of seconds, after allocation slows (its memory reducer), and can hold a level for 20 s
 * before the next step, so a reading right after the storm, or two equal readings, measure the
 * storm as much as the connections (with the Redis publisher auto-pipelined, tried and reverted,
 * 8,000 fans read 5 KB more per connection 15 s after connecting than without, and the same 60 s
 * after: bench/scale/profile.ts). What the connections need stays; the lowest reading is what a replica
 * holds for them, plus what V8 keeps.
 */
async function settledRss(read: () => number, seconds: number): Promise<{ bytes: number; waitedSeconds: number; readings: number[] }> {
  const readings = [read()];
  for (let waited = 0; waited < seconds; waited += RSS_READ_EVERY_S) {
    await delay(RSS_READ_EVERY_S * 1000);
    readings.push(read());
  }
  return { bytes: Math.min(...readings), waitedSeconds: (readings.length - 1) * RSS_READ_EVERY_S, readings };
}
