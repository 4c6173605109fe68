/**
 * `node --import tsx bench/scale/reconnect.ts`: what one reconnecting fan costs Redis and the
 * replica it lands on, for a kill -9 and a drain (SIGTERM), before/after side by side. Per variant,
 * per storm kind, per round, on fresh processes: one redis-server, two replicas, COUNT fans (default
 * 2,000; as in `npm run bench:scale`: JWT, X-Forwarded-For, the all-scores room + a match room,
 * history rooms, their user room) spread over both by the harness's leastconn balancer, publishing
 * going on through the survivor (RATE broadcasts a second to the all-scores room, default 1, and
 * MATCH_RATE to the match rooms, default 20). BASE_S seconds (default 10) of that are measured
 * first (Redis commands by name, survivor CPU), then the victim is signalled and the same measured
 * until every fan is back; the background's rate times the storm's length is taken off. Printed:
 * Redis commands per reconnecting fan by name, survivor (and, for a drain, victim) CPU ms per
 * reconnecting fan, and the time until all back.
 *
 * VARIANTS: `name:ENV=v,...;...` (herald settings; MAIN=<path> of another build's dist/main.js,
 * NODE_ARGS for node flags), e.g. `before:MAIN=<another checkout>/dist/main.js;after:`. Default `herald:` (this build). ROUNDS=n
 * (default 2) runs them interleaved n times. KINDS (default `kill,drain`). DRAIN_SECONDS (default 5).
 * DRAIN_DELAY_SECONDS (default 3, sized for the harness's balancer as for the shipped HAProxy:
 * scenario.ts `DRAIN_DELAY_SECONDS`); a drain's "all back" counts from the signal, delay included.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { FanPool } from '../../loadtest/harness/fans/pool.js';
import { loopbackAddresses } from '../../loadtest/harness/workers.js';
import { parseVariants } from '../stacks.js';
import { cpuSeconds, readiness, startRedis, startReplica, type RedisServer } from './cluster.js';
import { ScalePublisher } from './publisher.js';
import { DRAIN_DELAY_SECONDS, HEALTH_CHECK_MS, JWT_SECRET, PUBLISH_KEY } from './scenario.js';

const COUNT = Number(process.env.COUNT ?? 2000);
const MATCHES = Number(process.env.MATCHES ?? 100);
const BASE_S = Number(process.env.BASE_S ?? 10);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const KINDS = (process.env.KINDS ?? 'kill,drain').split(',') as ('kill' | 'drain')[];
const rates = { broadcast: Number(process.env.RATE ?? 1), match: Number(process.env.MATCH_RATE ?? 20), user: 0 };
const variants = parseVariants(process.env.VARIANTS ?? 'herald:');

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
setTimeout(() => {
  console.error('# reconnect: over 60 minutes; giving up');
  process.exit(2);
}, 60 * 60_000).unref();

async function commandStats(redis: RedisServer): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const m of (await redis.client.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1]!, Number(m[2]));
  return out;
}

/** MONITOR until the returned function is called: commands by name and key shape (digits and ids as #). */
async function watchCommands(redis: RedisServer): Promise<() => Promise<Map<string, number>>> {
  const shapes = new Map<string, number>();
  const m = await redis.client.duplicate().monitor();
  m.on('monitor', (_time: string, args: string[]) => {
    const cmd = String(args[0]).toLowerCase();
    if (process.env.MONITOR === 'raw') console.log(`# monitor ${args.map((a) => String(a).slice(0, 80)).join(' ')}`);
    const shape = [cmd, ...args.slice(1, cmd === 'eval' || cmd === 'evalsha' ? 4 : 3).map((a) => String(a).slice(0, 60).replace(/\n[\s\S]*/, '…').replace(/[0-9a-f]{16,}|\d+/gi, '#'))].join(' ');
    shapes.set(shape, (shapes.get(shape) ?? 0) + 1);
  });
  return async () => {
    m.disconnect();
    return shapes;
  };
}

const diff = (a: Map<string, number>, b: Map<string, number>) => new Map([...b].map(([k, v]) => [k, v - (a.get(k) ?? 0)]));

interface Result {
  fans: number;
  backS: number | undefined;
  survivorMs: number;
  victimMs: number;
  perFan: Map<string, number>;
  recovered: number;
  sinceRecovered: number;
  refusals: Record<string, number>;
}

async function storm(kind: 'kill' | 'drain', env: Record<string, string>): Promise<Result> {
  const { NODE_ARGS = '', MAIN, ...rest } = env;
  const redis = await startRedis();
  const settings = {
    redisUrl: redis.url,
    jwtSecret: JWT_SECRET,
    publishKey: PUBLISH_KEY,
    env: { DRAIN_SECONDS: process.env.DRAIN_SECONDS ?? '5', DRAIN_DELAY_SECONDS: process.env.DRAIN_DELAY_SECONDS ?? DRAIN_DELAY_SECONDS, ...rest },
    nodeArgs: NODE_ARGS.split(' ').filter(Boolean),
    ...(MAIN ? { main: MAIN } : {}),
  };
  const victim = await startReplica(settings);
  const survivor = await startReplica(settings);
  const pool = await FanPool.start(1);
  const publisher = new ScalePublisher([survivor.url], PUBLISH_KEY, MATCHES, COUNT);
  try {
    await pool.open(COUNT, { urls: [victim.url, survivor.url], matches: MATCHES, jwtSecret: JWT_SECRET, localAddresses: loopbackAddresses(8), concurrency: 64, forwardedFor: true });
    const until = Date.now() + 120_000;
    let status = await pool.status();
    while (status.live < COUNT && Date.now() < until) {
      await delay(250);
      status = await pool.status();
    }
    if (status.live < COUNT) throw new Error(`only ${status.live} of ${COUNT} live`);
    await delay(3000);
    await pool.phase('before');
    const publishing = publisher.run(BASE_S + 120, rates, victim.exited.then(() => delay(20_000)));
    await delay(1000);
    // Background: publishing and pings, nobody reconnecting.
    const b0 = { at: Date.now(), cmds: await commandStats(redis), cpu: cpuSeconds(survivor.pid) };
    await delay(BASE_S * 1000);
    const b1 = { at: Date.now(), cmds: await commandStats(redis), cpu: cpuSeconds(survivor.pid) };
    const fans = (await readiness(victim))?.connections ?? 0;
    await pool.phase('storm');
    const monitor = process.env.MONITOR ? await watchCommands(redis) : undefined;
    const s0 = { at: Date.now(), cmds: await commandStats(redis), cpu: cpuSeconds(survivor.pid) };
    const v0 = cpuSeconds(victim.pid);
    let v1 = v0;
    const signalledUs = process.hrtime.bigint() / 1000n;
    victim.signal(kind === 'kill' ? 'SIGKILL' : 'SIGTERM');
    const gone = victim.exited.then(() => true);
    const checked = delay(HEALTH_CHECK_MS).then(() => pool.urls([survivor.url]));
    const deadline = Date.now() + 120_000;
    for (;;) {
      await delay(100);
      const c = cpuSeconds(victim.pid);
      if (c > 0) v1 = c;
      status = await pool.status();
      if ((status.droppedInPhase >= fans && status.live === COUNT) || Date.now() > deadline) break;
    }
    // PROFILE: the storm's window on the monotonic clock a --cpu-prof's timestamps count on.
    if (process.env.PROFILE) console.log(`# ${kind} storm window (monotonic µs): ${signalledUs} ${process.hrtime.bigint() / 1000n}`);
    await checked;
    await Promise.race([gone, delay(30_000)]);
    const s1 = { at: Date.now(), cmds: await commandStats(redis), cpu: cpuSeconds(survivor.pid) };
    if (monitor) {
      const shapes = await monitor();
      console.log(`# ${kind} ${MAIN ? 'MAIN' : 'this build'}: commands per reconnecting fan by shape (MONITOR, background included):\n${[...shapes].sort((a, b) => b[1] - a[1]).filter(([, n]) => n / fans >= 0.05).map(([k, n]) => `  ${(n / fans).toFixed(2)}  ${k}`).join('\n')}`);
    }
    const back = status.live === COUNT && status.droppedInPhase >= fans;
    const wall = (s1.at - s0.at) / (b1.at - b0.at);
    const bg = diff(b0.cmds, b1.cmds);
    const st = diff(s0.cmds, s1.cmds);
    const perFan = new Map([...st].map(([k, v]) => [k, (v - (bg.get(k) ?? 0) * wall) / fans]));
    await publishing;
    // What was published has all arrived (deliveries unchanged over a second), at most 60 s.
    for (let last = -1, until = Date.now() + 60_000; Date.now() < until; await delay(1000)) {
      const { delivered } = await pool.status();
      if (delivered === last) break;
      last = delivered;
    }
    const report = await pool.report(publisher.accepted);
    const p = report.phases.get('storm')!;
    if (report.missingAll + report.missingMatch + report.duplicates > 0) console.log(`# ${kind}: ${report.missingAll} + ${report.missingMatch} missing (${report.missingOnLive} on live fans, ${report.notLive} fans not live), ${report.duplicates} duplicates`);
    return {
      fans,
      backS: back ? (status.lastBackAt - s0.at) / 1000 : undefined,
      survivorMs: ((s1.cpu - s0.cpu - (b1.cpu - b0.cpu) * wall) * 1000) / fans,
      victimMs: ((v1 - v0) * 1000) / fans,
      perFan,
      recovered: p.sessionsRecovered,
      sinceRecovered: p.sinceRecovered,
      refusals: p.refusals,
    };
  } finally {
    publisher.close();
    await pool.stop();
    // PROFILE: the survivor exits on its own (SIGTERM, a drain), so its --cpu-prof (NODE_ARGS) is written.
    if (process.env.PROFILE) {
      survivor.signal('SIGTERM');
      await Promise.race([survivor.exited, delay(60_000)]);
    }
    for (const r of [victim, survivor]) r.signal('SIGKILL');
    await Promise.all([victim.exited, survivor.exited]);
    await redis.stop();
  }
}

const results = new Map<string, Result[]>();
for (let round = 0; round < ROUNDS; round++) {
  for (const kind of KINDS) {
    for (const v of variants) {
      const r = await storm(kind, v.env);
      const key = `${kind} ${v.name}`;
      results.set(key, [...(results.get(key) ?? []), r]);
      const top = [...r.perFan].filter(([, n]) => Math.abs(n) >= 0.05).sort((a, b) => b[1] - a[1]);
      console.log(
        `${key.padEnd(14)} ${r.fans} fans, ${r.backS === undefined ? 'NOT all back' : `all back ${r.backS.toFixed(1)} s`}; recovered ${r.recovered}, since-recovered ${r.sinceRecovered}, refusals ${JSON.stringify(r.refusals)}; ` +
          `survivor ${r.survivorMs.toFixed(2)} ms/fan, victim ${r.victimMs.toFixed(2)} ms/fan; Redis ${top.reduce((a, [, n]) => a + n, 0).toFixed(1)}/fan: ${top.map(([k, n]) => `${k} ${n.toFixed(2)}`).join(', ')}`,
      );
    }
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`# medians over ${ROUNDS} round(s); load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}`);
for (const [key, rs] of results) {
  const names = new Set(rs.flatMap((r) => [...r.perFan.keys()]));
  const cmds = [...names].map((k) => [k, median(rs.map((r) => r.perFan.get(k) ?? 0))] as const).filter(([, n]) => Math.abs(n) >= 0.05).sort((a, b) => b[1] - a[1]);
  console.log(
    `${key.padEnd(14)} back ${median(rs.map((r) => r.backS ?? Infinity)).toFixed(1)} s, survivor ${median(rs.map((r) => r.survivorMs)).toFixed(2)} ms/fan, victim ${median(rs.map((r) => r.victimMs)).toFixed(2)} ms/fan; ` +
      `Redis ${cmds.reduce((a, [, n]) => a + n, 0).toFixed(1)}/fan: ${cmds.map(([k, n]) => `${k} ${n.toFixed(2)}`).join(', ')}`,
  );
}
process.exit(0);
