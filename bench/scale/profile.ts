/**
 * `node --import tsx bench/scale/profile.ts`: where a bench:scale replica's CPU goes, on ONE
 * replica + its own Redis with COUNT fans (default 5,000; each in the all-scores room, a match
 * room and its user room, JWT, X-Forwarded-For, as in `npm run bench:scale`). Per variant, on
 * fresh processes:
 *   - idle: the replica's (and Redis's) process CPU over IDLE_S seconds (default 40) with the fans
 *     connected and nothing published;
 *   - first: one broadcast to the all-scores room, each fan's first live message there (a fresh
 *     subscriber's settling, src/history/rooms.ts), until every fan has it: replica CPU per delivery;
 *   - broadcast: RATE publishes a second (default 1) to the all-scores room for BROADCAST_S seconds
 *     (default 30), until every delivery arrived: replica CPU per delivery, in µs.
 * MATCH_S=<s> (default 0: none) adds a phase of MATCH_RATE publishes a second (default 100) over the
 * match rooms, COUNT / MATCHES fans each: the cost of a publish to a small room.
 * PROFILE=<dir>: each phase is also profiled (V8's sampling profiler over the inspector, started
 * and stopped at the phase's edges, so the connect storm is not in it): `<variant>-<phase>.cpuprofile`
 * there (open in Chrome DevTools), and the functions with the most self time printed. The
 * profiler costs CPU itself: compare CPU numbers from runs without PROFILE. ALLOCATIONS=1 with
 * PROFILE also samples the heap's allocations over each phase (V8's sampling heap profiler, one
 * sample per 32 KiB allocated): the functions that allocated the most, garbage included, printed
 * (what the garbage collector's share of the phase comes from).
 *
 * VARIANTS: `name:ENV=v,ENV=v;name:...` (herald settings; NODE_ARGS for node flags; MAIN=<path>
 * of another build's dist/main.js, to run before/after side by side). Default:
 * `history:;plain:HISTORY_ROOMS=` (the all-scores room with history, and without: a plain room).
 * ROUNDS=n runs the variants in turn n times (default 1), so machine noise spreads over all.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';
import { FanPool } from '../../loadtest/harness/fans/pool.js';
import { loopbackAddresses } from '../../loadtest/harness/workers.js';
import { freePort } from '../../test/helpers/ports.js';
import { cpuSeconds, rssBytes, startRedis, startReplica } from './cluster.js';
import { ScalePublisher } from './publisher.js';
import { JWT_SECRET, PUBLISH_KEY } from './scenario.js';
import { parseVariants } from '../stacks.js';

const COUNT = Number(process.env.COUNT ?? 5000);
const IDLE_S = Number(process.env.IDLE_S ?? 40);
const BROADCAST_S = Number(process.env.BROADCAST_S ?? 30);
const RATE = Number(process.env.RATE ?? 1);
const MATCHES = Number(process.env.MATCHES ?? 1000);
const profileDir = process.env.PROFILE;
if (profileDir) mkdirSync(profileDir, { recursive: true });
const variants = parseVariants(process.env.VARIANTS ?? 'history:;plain:HISTORY_ROOMS=');

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
const bound = setTimeout(() => {
  console.error('# profile: over 30 minutes; giving up');
  process.exit(2);
}, 30 * 60_000);
bound.unref();

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

/** The replica's GCs so far by kind (prom-client's herald_nodejs_gc_duration_seconds): count and seconds. */
async function gcs(url: string): Promise<Record<string, { count: number; seconds: number }>> {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${PUBLISH_KEY}` } })).text();
  const out: Record<string, { count: number; seconds: number }> = {};
  for (const m of text.matchAll(/^herald_nodejs_gc_duration_seconds_(count|sum)\{[^}]*kind="(\w+)"[^}]*\} (\S+)$/gm)) {
    const k = (out[m[2]!] ??= { count: 0, seconds: 0 });
    if (m[1] === 'count') k.count = Number(m[3]);
    else k.seconds = Number(m[3]);
  }
  return out;
}

function gcSplit(a: Record<string, { count: number; seconds: number }>, b: Record<string, { count: number; seconds: number }>): string {
  return Object.entries(b)
    .map(([kind, g]) => `${kind} ${g.count - (a[kind]?.count ?? 0)} × = ${((g.seconds - (a[kind]?.seconds ?? 0)) * 1000).toFixed(0)} ms`)
    .join(', ');
}

/** Per thread name (main thread: `main`), user and system CPU seconds so far, from /proc. */
function threadCpu(pid: number): Map<string, { user: number; sys: number }> {
  const out = new Map<string, { user: number; sys: number }>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = tid === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/\d+$/, '#');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const t = out.get(name) ?? { user: 0, sys: 0 };
      t.user += Number(f[11]) / 100;
      t.sys += Number(f[12]) / 100;
      out.set(name, t);
    } catch {
      // A thread that ended meanwhile.
    }
  }
  return out;
}

/** Where the process's CPU went between two `threadCpu` readings: `main user 1.20 s sys 0.40 s, V8 DefaultWorke# ...`. */
function threadSplit(a: Map<string, { user: number; sys: number }>, b: Map<string, { user: number; sys: number }>): string {
  return [...b]
    .map(([name, t]) => ({ name, user: t.user - (a.get(name)?.user ?? 0), sys: t.sys - (a.get(name)?.sys ?? 0) }))
    .filter((t) => t.user + t.sys > 0)
    .sort((x, y) => y.user + y.sys - (x.user + x.sys))
    .map((t) => `${t.name} user ${t.user.toFixed(2)} s sys ${t.sys.toFixed(2)} s`)
    .join(', ');
}

/** V8's profiler in another process, over its inspector (`--inspect=127.0.0.1:port`). */
class RemoteProfiler {
  private nextId = 0;
  private readonly waiting = new Map<number, (result: unknown) => void>();
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (raw) => {
      const msg = JSON.parse(String(raw)) as { id?: number; result?: unknown };
      if (msg.id !== undefined) this.waiting.get(msg.id)?.(msg.result);
    });
  }

  static async connect(port: number): Promise<RemoteProfiler> {
    const [target] = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
    const ws = new WebSocket(target!.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const p = new RemoteProfiler(ws);
    await p.call('Profiler.enable');
    await p.call('Profiler.setSamplingInterval', { interval: 1000 });
    return p;
  }

  call(method: string, params: object = {}): Promise<unknown> {
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${method}: no answer in 60 s`)), 60_000);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(r);
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  async stop(): Promise<CpuProfile> {
    return ((await this.call('Profiler.stop')) as { profile: CpuProfile }).profile;
  }

  close(): void {
    this.ws.close();
  }
}

interface SamplingHeapProfile {
  head: SamplingNode;
}
interface SamplingNode {
  callFrame: CpuProfile['nodes'][number]['callFrame'];
  selfSize: number;
  children: SamplingNode[];
}

/** The functions that allocated the most (self), with the herald or package frame nearest above each, as lines. */
function summarizeAllocations(profile: SamplingHeapProfile, top = 20): string[] {
  const self = new Map<string, number>();
  let total = 0;
  const walk = (n: SamplingNode, caller: string) => {
    const here = where(n.callFrame);
    // Built-ins (no url) are named with their nearest caller that has code of its own.
    const name = n.callFrame.url ? here : `${here} ← ${caller}`;
    if (n.selfSize > 0) {
      self.set(name, (self.get(name) ?? 0) + n.selfSize);
      total += n.selfSize;
    }
    for (const c of n.children) walk(c, n.callFrame.url ? here : caller);
  };
  walk(profile.head, '(root)');
  return [
    `  ${(total / 2 ** 20).toFixed(1)} MiB sampled`,
    ...[...self].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, b]) => `  ${((b / total) * 100).toFixed(1).padStart(5)} %  ${(b / 2 ** 20).toFixed(2).padStart(7)} MiB  ${k}`),
  ];
}

/** Where a frame's code lives: herald's module, a package, or V8's own buckets ((garbage collector), (program)...). */
function where(f: CpuProfile['nodes'][number]['callFrame']): string {
  const url = f.url.replace(/.*node_modules\//, '').replace(/.*\/dist\//, 'dist/').replace(/^file:\/\//, '');
  return `${f.functionName || '(anonymous)'} ${url}${url ? `:${f.lineNumber + 1}` : ''}`;
}

function pkg(f: CpuProfile['nodes'][number]['callFrame']): string {
  if (!f.url) return f.functionName.startsWith('(') ? f.functionName : '(native)';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f.url) ?? /\/dist\/([^/]+)/.exec(f.url);
  if (m) return m[1]!;
  return f.url.startsWith('node:') ? 'node:' + f.url.slice(5).split('/')[0] : f.url;
}

/** The functions (and packages) with the most self time, as lines. */
function summarize(profile: CpuProfile, top = 22): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  const packages = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const n = byId.get(id)!;
    const us = profile.timeDeltas[i] ?? 0;
    total += us;
    self.set(where(n.callFrame), (self.get(where(n.callFrame)) ?? 0) + us);
    packages.set(pkg(n.callFrame), (packages.get(pkg(n.callFrame)) ?? 0) + us);
  });
  const busy = total - (self.get('(idle) ') ?? 0);
  const pct = (us: number) => `${((us / busy) * 100).toFixed(1).padStart(5)} %`;
  return [
    `  ${(busy / 1e6).toFixed(2)} s busy of ${(total / 1e6).toFixed(1)} s sampled; by package (% of busy): ${[...packages].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, 10).map(([k, us]) => `${k} ${((us / busy) * 100).toFixed(1)}%`).join(', ')}`,
    ...[...self].filter(([k]) => k !== '(idle) ').sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, us]) => `  ${pct(us)}  ${k}`),
  ];
}

const rounds = Array.from({ length: Number(process.env.ROUNDS ?? 1) }, () => variants).flat();
const results: Record<string, { idlePct: number[]; usPerDelivery: number[]; firstUs: number[] }> = {};
for (const v of rounds) {
  const { NODE_ARGS = '', MAIN, ...env } = v.env;
  const inspectPort = profileDir ? await freePort() : 0;
  const redis = await startRedis();
  const replica = await startReplica({
    redisUrl: redis.url,
    jwtSecret: JWT_SECRET,
    publishKey: PUBLISH_KEY,
    env: { CONNECT_RATE_PER_IP: '100000', CONNECT_BURST_PER_IP: '100000', ...env },
    nodeArgs: [...NODE_ARGS.split(' ').filter(Boolean), ...(profileDir ? [`--inspect=127.0.0.1:${inspectPort}`] : [])],
    ...(MAIN ? { main: MAIN } : {}),
  });
  const pool = await FanPool.start(2);
  const profiler = profileDir ? await RemoteProfiler.connect(inspectPort) : undefined;
  const publisher = new ScalePublisher([replica.url], PUBLISH_KEY, MATCHES, COUNT);
  const allocations = profiler !== undefined && process.env.ALLOCATIONS === '1';
  const profiled = async <T>(phase: string, run: () => Promise<T>): Promise<T> => {
    await profiler?.call('Profiler.start');
    if (allocations) await profiler.call('HeapProfiler.startSampling', { samplingInterval: 32 * 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    const out = await run();
    if (allocations) {
      const { profile } = (await profiler.call('HeapProfiler.stopSampling')) as { profile: SamplingHeapProfile };
      console.log(`# ${v.name} ${phase} allocations:\n${summarizeAllocations(profile).join('\n')}`);
    }
    if (profiler) {
      const profile = await profiler.stop();
      writeFileSync(join(profileDir!, `${v.name}-${phase}.cpuprofile`), JSON.stringify(profile));
      console.log(`# ${v.name} ${phase} profile:\n${summarize(profile).join('\n')}`);
    }
    return out;
  };
  try {
    await pool.open(COUNT, { urls: [replica.url], matches: MATCHES, jwtSecret: JWT_SECRET, localAddresses: loopbackAddresses(16), concurrency: 64, forwardedFor: true });
    const deadline = Date.now() + 180_000;
    let status = await pool.status();
    while (status.live < COUNT && Date.now() < deadline) {
      await delay(500);
      status = await pool.status();
    }
    if (status.live < COUNT) throw new Error(`only ${status.live} of ${COUNT} fans live`);
    // The connect storm's leftovers (GC, timers of the handshakes) out of the way.
    await delay(5000);

    await pool.phase('idle');
    const idle = await profiled('idle', async () => {
      const c0 = cpuSeconds(replica.pid);
      const r0 = cpuSeconds(redis.pid);
      const th0 = threadCpu(replica.pid);
      const g0 = await gcs(replica.url);
      const t0 = Date.now();
      await delay(IDLE_S * 1000);
      const wall = (Date.now() - t0) / 1000;
      return { replica: (cpuSeconds(replica.pid) - c0) / wall, redis: (cpuSeconds(redis.pid) - r0) / wall, wall, threads: threadSplit(th0, threadCpu(replica.pid)), gc: gcSplit(g0, await gcs(replica.url)) };
    });

    /** Publishes `seconds` × RATE broadcasts to the all-scores room, until every fan has each (bounded). */
    const broadcast = async (phase: string, seconds: number, rates = { broadcast: RATE, match: 0, user: 0 }) => {
      await pool.phase(phase);
      return profiled(phase, async () => {
        const c0 = cpuSeconds(replica.pid);
        const r0 = cpuSeconds(redis.pid);
        const th0 = threadCpu(replica.pid);
        const t0 = Date.now();
        const count = () => publisher.accepted.all + Object.values(publisher.accepted.match).reduce((a, n) => a + n, 0);
        const from = count();
        const fromAll = publisher.accepted.all;
        await publisher.run(seconds, rates);
        const publishes = count() - from;
        // A match room has COUNT / MATCHES fans.
        const expected = (publisher.accepted.all - fromAll) * COUNT + (publishes - (publisher.accepted.all - fromAll)) * Math.floor(COUNT / MATCHES);
        const until = Date.now() + 120_000;
        let delivered = (await pool.status()).delivered;
        while (delivered < expected && Date.now() < until) {
          await delay(200);
          delivered = (await pool.status()).delivered;
        }
        return { replica: cpuSeconds(replica.pid) - c0, redis: cpuSeconds(redis.pid) - r0, wall: (Date.now() - t0) / 1000, threads: threadSplit(th0, threadCpu(replica.pid)), delivered, expected, publishes };
      });
    };
    // The first broadcast after the fans subscribed (each fan's first live message there), then the steady state.
    const first = await broadcast('first', 1 / RATE);
    const b = await broadcast('broadcast', BROADCAST_S);
    const firstUs = (first.replica / Math.max(1, first.delivered)) * 1e6;
    // Small rooms: MATCH_RATE publishes a second over the match rooms (COUNT / MATCHES fans each), for MATCH_S seconds.
    const matchS = Number(process.env.MATCH_S ?? 0);
    const match = matchS > 0 ? await broadcast('match', matchS, { broadcast: 0, match: Number(process.env.MATCH_RATE ?? 100), user: 0 }) : undefined;
    const us = (b.replica / Math.max(1, b.delivered)) * 1e6;
    (results[v.name] ??= { idlePct: [], usPerDelivery: [], firstUs: [] }).idlePct.push(idle.replica * 100);
    results[v.name]!.firstUs.push(firstUs);
    results[v.name]!.usPerDelivery.push(us);
    console.log(
      `${v.name.padEnd(12)} ${status.live} fans, RSS ${(rssBytes(replica.pid) / 2 ** 20).toFixed(0)} MiB | idle ${idle.wall.toFixed(0)} s: replica ${(idle.replica * 100).toFixed(2)} % CPU ` +
        `(${((idle.replica * 1e6) / status.live).toFixed(2)} µs/s per fan), redis ${(idle.redis * 100).toFixed(2)} % | broadcast: ${b.publishes} publishes, ${b.delivered} of ${b.expected} delivered in ${b.wall.toFixed(1)} s, ` +
        `replica ${b.replica.toFixed(2)} s CPU = ${us.toFixed(2)} µs per delivery (${((b.replica / Math.max(1, b.publishes)) * 1000).toFixed(1)} ms per broadcast), redis ${b.redis.toFixed(2)} s`,
    );
    console.log(`  first broadcast: ${first.delivered} of ${first.expected} delivered, replica ${(first.replica * 1000).toFixed(0)} ms CPU = ${firstUs.toFixed(2)} µs per delivery; threads: ${first.threads}`);
    console.log(`  idle GC: ${idle.gc}\n  idle threads: ${idle.threads}\n  broadcast threads: ${b.threads}`);
    if (match) {
      console.log(
        `  match rooms: ${match.publishes} publishes, ${match.delivered} of ${match.expected} delivered, replica ${match.replica.toFixed(2)} s CPU = ${((match.replica / Math.max(1, match.publishes)) * 1e6).toFixed(0)} µs per publish, ` +
          `${((match.replica / Math.max(1, match.delivered)) * 1e6).toFixed(1)} µs per delivery; threads: ${match.threads}`,
      );
    }
  } finally {
    profiler?.close();
    publisher.close();
    await pool.stop();
    replica.signal('SIGKILL');
    await replica.exited;
    await redis.stop();
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`# medians over ${rounds.length / variants.length} round(s):`);
for (const [name, r] of Object.entries(results)) console.log(`${name.padEnd(12)} idle ${median(r.idlePct).toFixed(2)} % CPU, first broadcast ${median(r.firstUs).toFixed(2)} µs per delivery, then ${median(r.usPerDelivery).toFixed(2)} µs per delivery`);
process.exit(0);
