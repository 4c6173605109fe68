/** The scale scenario's tables, as Markdown (what `npm run bench:scale` prints and writes). */
import { cpus, release, totalmem } from 'node:os';
import type { Paper } from './paper.js';
import { paperMarkdown } from './paper.js';
import type { PubSubCapacity } from './redis-capacity.js';
import type { CpuSplit, ScaleResult, Storm } from './scenario.js';

const fmt = (n: number | undefined, digits = 0) => (n === undefined || Number.isNaN(n) ? 'n/a' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const pct = (share: number) => `${fmt(share * 100, 1)} %`;
const cores = (c: CpuSplit) => `replicas ${fmt(c.replicas, 2)}, Redis ${fmt(c.redis, 2)}, clients ${fmt(c.clients, 2)}; machine ${fmt(c.machine, 2)} of ${cpus().length} (others included)`;
const counts = (c: Record<string, number>) => (Object.keys(c).length === 0 ? 'none' : Object.entries(c).map(([k, v]) => `${fmt(v)} × ${k}`).join(', '));

export function machine(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model.trim() ?? 'unknown CPU'}, ${fmt(totalmem() / 2 ** 30, 0)} GiB RAM, Linux ${release()}, Node ${process.version}`;
}

/** The storm table's rows, one per cell of `stormColumn`. */
const STORM_LABELS = [
  'replica signalled, connections it held',
  'fans dropped',
  'all back and subscribed',
  'half, 90 % and 99 % of them back',
  'dropped fans holding every history message',
  'sessions recovered whole (`recovered: true`)',
  "the surviving replicas' `herald_session_recovery_total` over the storm",
  '`since` subscribes',
  'failed handshakes (by kind)',
  "handshakes the surviving replicas refused (`herald_connections_refused_total`; overloaded: `HANDSHAKE_MAX_LAG_MS`)",
  'connections dropped from a full listen queue (kernel `ListenOverflows`; uWS listens with a backlog of 512), retried by TCP',
  'attempts redispatched by the balancer (a refused connection, or a handshake answered 503)',
  "healthy fans' latency during the storm",
  'Redis during the storm',
  'cores used (surviving replicas, Redis, clients)',
  '`herald:reset` received',
];

/** When the last dropped fan of a storm was back and subscribed. */
const allBack = (s: Storm) => (s.allBackSeconds === undefined ? '**not all back**' : `${fmt(s.allBackSeconds, 1)} s after the signal`);

function stormColumn(s: Storm | undefined): string[] {
  if (!s) return STORM_LABELS.map(() => 'not run');
  const reconnected = s.sessionsRecovered + s.sinceRecovered / 2 + s.sinceNotRecovered / 2;
  return [
    `${s.victim}, ${fmt(s.victimConnections)} connections`,
    fmt(s.droppedFans),
    allBack(s),
    s.backSeconds ? [s.backSeconds.p50, s.backSeconds.p90, s.backSeconds.p99].map((x) => (x === undefined ? 'never' : `${fmt(x, 1)} s`)).join(', ') : 'not measured',
    `${fmt(s.droppedComplete)} of ${fmt(s.droppedFans)}`,
    `${fmt(s.sessionsRecovered)} (${pct(s.sessionsRecovered / Math.max(1, reconnected))} of reconnected fans)`,
    counts(s.sessionOutcomes ?? {}),
    `${fmt(s.sinceRecovered)} recovered, ${fmt(s.sinceNotRecovered)} not`,
    counts(s.refusals),
    s.refusedByReplicas === undefined ? 'not counted' : counts(s.refusedByReplicas),
    fmt(s.listenOverflows),
    fmt(s.redispatched),
    `p50 ${fmt(s.healthy.p50)} ms, p99 ${fmt(s.healthy.p99)} ms (${fmt(s.healthy.samples)} deliveries)`,
    `${pct(s.redis.cpuShare)} of a core, ${fmt(s.redis.commandsPerSecond)} commands/s over ${fmt(s.redis.seconds, 1)} s`,
    cores(s.cores),
    fmt(s.resets),
  ];
}

const rateLabel = (x: { broadcast: number; match: number }) => `a broadcast every ${fmt(1 / x.broadcast)} s, ${fmt(x.match)} match updates/s`;

function broadcastRows(r: ScaleResult): string[] {
  const row = (label: string, cell: (b: ScaleResult['broadcasts'][number]) => string) => `| ${label} | ${r.broadcasts.map(cell).join(' | ')} |`;
  return [
    row('broadcasts', (b) => `${fmt(b.broadcasts)}; ${fmt(b.complete)} reached all ${fmt(r.options.connections)} fans live`),
    row('publish call → last delivery', (b) => `p50 ${fmt(b.lastDeliveryMs.p50)} ms, p99 ${fmt(b.lastDeliveryMs.p99)} ms, max ${fmt(b.lastDeliveryMs.max)} ms`),
    row('publish call → each delivery', (b) => `p50 ${fmt(b.perDeliveryMs.p50)} ms, p99 ${fmt(b.perDeliveryMs.p99)} ms${b.perDeliveryMs.max >= 60_000 ? ' (60 s and over share the last bucket)' : `, max ${fmt(b.perDeliveryMs.max)} ms`}`),
    row('deliveries', (b) => `${fmt(b.deliveries)} from ${fmt(b.publishes)} publishes; ${fmt(b.deliveriesPerSecond)}/s over ${fmt(b.cores.wall)} s until the last one`),
    row('CPU per delivery', (b) => `${fmt(b.cpuUsPerDelivery, 2)} µs (replicas and Redis); replicas alone ${fmt(b.replicasCpuUsPerDelivery, 2)} µs`),
    row('Redis CPU per publish', (b) => `${fmt(b.redisCpuUsPerPublish)} µs`),
    row('worst event-loop lag of a replica', (b) => `${fmt(b.eventLoopLagMaxMs)} ms`),
    row('cores used', (b) => cores(b.cores)),
  ];
}

/**
 * herald beside the ceiling (raw uWS processes in the replicas' place, the same fans, clients and
 * publishing, run right after on the same machine): what of each figure is the transport's and the
 * machine's, and what is herald's.
 */
function ceilingMarkdown(r: ScaleResult, c: ScaleResult): string[] {
  const sumOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const row = (label: string, cell: (x: ScaleResult) => string) => `| ${label} | ${cell(r)} | ${cell(c)} |`;
  const rows = [
    row('connections subscribed', (x) => `${fmt(x.connect.live)} of ${fmt(x.connect.connections)}`),
    row('time to establish all', (x) => `${fmt(x.connect.seconds, 1)} s (${fmt(x.connect.ratePerSecond)}/s)`),
    row('RSS per connection (above the processes\' RSS before any)', (x) => `${fmt(x.memory.perConnectionBytes)} B (${fmt(x.memory.marginalPerConnectionBytes)} B)`),
    row('PSS per connection (shared pages counted once)', (x) => `${fmt(x.memory.pssPerConnectionBytes)} B`),
    row('idle CPU, all server processes together', (x) => pct(sumOf(x.idle.replicaCpuShares))),
  ];
  c.broadcasts.forEach((cb, i) => {
    const get = (x: ScaleResult) => (x === c ? cb : x.broadcasts[i]);
    const cell = (f: (b: ScaleResult['broadcasts'][number], herald: boolean) => string) => (x: ScaleResult) => {
      const b = get(x);
      return b ? f(b, x !== c) : 'not run';
    };
    const label = rateLabel(cb.rates);
    rows.push(
      row(`${label}: publish call → last delivery`, cell((b) => `p50 ${fmt(b.lastDeliveryMs.p50)} ms, p99 ${fmt(b.lastDeliveryMs.p99)} ms`)),
      row(`${label}: publish call → each delivery`, cell((b) => `p50 ${fmt(b.perDeliveryMs.p50)} ms, p99 ${fmt(b.perDeliveryMs.p99)} ms`)),
      row(`${label}: broadcasts that reached every fan live`, cell((b) => `${fmt(b.complete)} of ${fmt(b.broadcasts)}`)),
      row(`${label}: deliveries per second, until the last one`, cell((b) => fmt(b.deliveriesPerSecond))),
      row(`${label}: server CPU per delivery`, cell((b, herald) => `${fmt(b.replicasCpuUsPerDelivery, 2)} µs${herald ? ` (Redis: ${fmt(b.cpuUsPerDelivery - b.replicasCpuUsPerDelivery, 2)} µs more)` : ''}`)),
      row(`${label}: cores used (servers with Redis, clients; machine)`, cell((b) => `${fmt(b.cores.replicas + b.cores.redis, 2)}, ${fmt(b.cores.clients, 2)}; ${fmt(b.cores.machine, 2)} of ${cpus().length}`)),
    );
  });
  const ck = c.storms.find((s) => s.kind === 'kill');
  if (ck) {
    const kill = (x: ScaleResult) => x.storms.find((s) => s.kind === 'kill');
    const cell = (f: (s: Storm) => string) => (x: ScaleResult) => {
      const s = kill(x);
      return s ? f(s) : 'not run';
    };
    rows.push(
      row('kill -9 of the process holding the most: connections it held', cell((s) => fmt(s.victimConnections))),
      row('kill -9: all back and subscribed', cell(allBack)),
      row('kill -9: failed handshakes (by kind)', cell((s) => counts(s.refusals))),
      row('kill -9: connections dropped from a full listen queue', cell((s) => fmt(s.listenOverflows))),
      row("kill -9: healthy fans' latency during the storm", cell((s) => `p50 ${fmt(s.healthy.p50)} ms, p99 ${fmt(s.healthy.p99)} ms`)),
      row('kill -9: cores used (surviving servers with Redis, clients; machine)', cell((s) => `${fmt(s.cores.replicas + s.cores.redis, 2)}, ${fmt(s.cores.clients, 2)}; ${fmt(s.cores.machine, 2)} of ${cpus().length}`)),
    );
  }
  return [
    '',
    `### The same fans against raw uWS (the ceiling)`,
    '',
    `Right after the run above, on the same machine: ${c.options.replicas} processes of raw uWebSockets.js pub/sub (bench/uws-ceiling.cjs: just enough Socket.IO for the fans, \`app.publish\` to a topic per room, Engine.IO's ping every 25 s; no Redis between them: the publisher sends each publish to every one of them; no auth, history, recovery or per-IP limits) in the replicas' place, the same ${c.options.clientProcesses} client processes of fans, balancer and publisher${c.options.rates.user === 0 ? ', without the user notifications (the ceiling has no user rooms)' : ''}. ${ck ? "One storm, herald's kill -9, at the same publishing rates: the fans of the killed process come back through the balancer and subscribe again, with nothing to restore (no session lookup, token check or history catch-up), so what they missed while out is not sent them." : 'No storms.'} What the ceiling cannot do on this machine, herald cannot either: the gap between the columns is herald's.`,
    '',
    '| | herald | raw uWS |',
    '| --- | --- | --- |',
    ...rows,
    '',
    `Ceiling run: ${fmt(c.totals.missingAll + c.totals.missingMatch)} messages missing (all-scores ${fmt(c.totals.missingAll)}, match ${fmt(c.totals.missingMatch)}${ck ? '; the ceiling keeps no history, so these are what was published while the fans of its killed process were out' : ''}), ${fmt(c.totals.duplicates)} duplicates; publishes refused: ${counts(c.totals.publishFailures)}.`,
  ];
}

export function scaleMarkdown(r: ScaleResult, redis: PubSubCapacity | undefined, paper: Paper | undefined, command: string, seconds: number, ceiling?: ScaleResult): string {
  const o = r.options;
  const kill = r.storms.find((s) => s.kind === 'kill');
  const drain = r.storms.find((s) => s.kind === 'drain');
  const storm = o.stormRates ?? o.rates;
  const k = stormColumn(kill);
  const d = stormColumn(drain);
  const lines = [
    `## ${fmt(o.connections)} fans on one machine (\`${command}\`, ${fmt(seconds)} s)`,
    '',
    `Machine: ${machine()}, shared by every process below. ${o.replicas} herald replicas (uWS, Redis classic pub/sub, each under a ${'`ulimit -n`'} of its own) + one redis-server, ${o.clientProcesses} client processes (loadtest/harness/fans), all on loopback; client source addresses spread over 127.0.0.1–${o.localAddresses}. Each fan is a live-score page: the all-scores room and one of ${fmt(o.matches)} match rooms (both history rooms), and its user room (JWT \`sub\`); it sends \`X-Forwarded-For\` with an address of its own, as a balancer does, and the replicas count per-IP limits on it (\`TRUST_PROXY=1\`, default \`CONNECT_RATE_PER_IP\`/\`CONNECT_BURST_PER_IP\`). The harness balances like the shipped HAProxy: leastconn, a replica out of rotation ${2} s after it is killed or starts draining, refused TCP connections and handshakes answered 503 redispatched (\`retry-on conn-failure 503\`). Publishing: ${o.rates.broadcast} broadcast/s to all, ${fmt(o.rates.match)} match updates/s (round robin), ${fmt(o.rates.user)} user notifications/s.`,
    '',
    '| Connect and idle | |',
    '| --- | --- |',
    `| connections | ${fmt(r.connect.live)} of ${fmt(r.connect.connections)} subscribed |`,
    `| time to establish all | ${fmt(r.connect.seconds, 1)} s (${fmt(r.connect.ratePerSecond)}/s on average, peak ${fmt(r.connect.peakPerSecond)}/s) |`,
    `| failed handshakes while connecting | ${counts(r.connect.refusals)}; ${fmt(r.connect.listenOverflows)} connections dropped from a full listen queue and retried by TCP |`,
    `| replicas' RSS | ${fmt(r.memory.replicasRssBytes / 2 ** 20)} MiB: ${fmt(r.memory.perConnectionBytes)} B per connection (${fmt(r.memory.marginalPerConnectionBytes)} B above their RSS before any connection); PSS ${fmt(r.memory.replicasPssBytes / 2 ** 20)} MiB: ${fmt(r.memory.pssPerConnectionBytes)} B per connection (the pages the replicas share counted once)${r.memory.settledAfterSeconds === undefined ? '' : `; the lowest of readings every 5 s over ${r.memory.settledAfterSeconds} s after the idle window`} |`,
    `| idle CPU (pings every 25 s) | replicas ${r.idle.replicaCpuShares.map(pct).join(', ')}; Redis ${pct(r.idle.redisCpuShare)}; the client processes ${pct(r.idle.clientsCpuShare)} together (over ${fmt(r.idle.seconds)} s) |`,
    '',
    `| Broadcast to all for ${o.broadcastSeconds} s, with match and user traffic | ${r.broadcasts.map((x) => rateLabel(x.rates)).join(' | ')} |`,
    `| --- | ${r.broadcasts.map(() => '---').join(' | ')} |`,
    ...broadcastRows(r),
    '',
    `| Storm, while publishing goes on (${storm.broadcast} broadcasts/s, ${fmt(storm.match)} match updates/s) | kill -9 | SIGTERM (drain) |`,
    '| --- | --- | --- |',
    ...STORM_LABELS.map((l, i) => `| ${l} | ${k[i]} | ${d[i]} |`),
    '',
    `Over the whole run: ${fmt(r.totals.missingAll + r.totals.missingMatch)} history messages missing (all-scores ${fmt(r.totals.missingAll)}, match ${fmt(r.totals.missingMatch)}; ${fmt(r.totals.missingOnLiveFans)} of them on fans live at the end, the rest on the ${fmt(r.totals.notLiveAtEnd)} still reconnecting), ${fmt(r.totals.duplicates)} duplicates; user rooms (at-most-once) ${fmt(r.totals.userReceived)} of ${fmt(r.totals.userExpected)} received; publishes refused: ${counts(r.totals.publishFailures)}.`,
  ];
  if (r.replicaProblems.length > 0) lines.push('', `Replica warnings: ${r.replicaProblems.length} (first: \`${r.replicaProblems[0]!.slice(0, 200)}\`)`);
  if (ceiling) lines.push(...ceilingMarkdown(r, ceiling));
  if (redis) {
    lines.push(
      '',
      `### One Redis core's pub/sub capacity here`,
      '',
      `Raw clients pipelining PUBLISH (${redis.payloadBytes}-byte messages) to one channel with k subscribers, Redis ${'`redis-server`'} alone on its core as far as the machine allows; "per core" divides by Redis's measured CPU share.`,
      '',
      '| subscribers | in (PUBLISH/s) | out (deliveries/s) | Redis CPU | in per core-second | out per core-second |',
      '| --- | --- | --- | --- | --- | --- |',
      ...redis.runs.map((x) => `| ${x.subscribers} | ${fmt(x.inPerSecond)} | ${fmt(x.outPerSecond)} | ${pct(x.redisCpuShare)} | ${fmt(x.inPerSecond / x.redisCpuShare)} | ${fmt(x.outPerSecond / x.redisCpuShare)} |`),
      '',
      `Fit: ${fmt(redis.usPerMessageIn, 3)} µs of Redis CPU per message in, ${fmt(redis.usPerDeliveryOut, 3)} µs per delivery out.`,
    );
  }
  if (paper) lines.push('', paperMarkdown(paper, r));
  return lines.join('\n');
}
