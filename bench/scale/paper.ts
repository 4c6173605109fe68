/**
 * Past one machine, on paper: what 1M fans of 1,000 matches need, from the costs measured by the
 * scale scenario and one Redis core's measured pub/sub capacity.
 */
import { defaultMaxConnections } from '../../src/limits/descriptors.js';
import type { PubSubCapacity } from './redis-capacity.js';
import type { ScaleResult } from './scenario.js';

/** The load the paper plans for. */
export const PLAN = {
  fans: 1_000_000,
  matches: 1_000,
  /** Broadcasts a second to the all-scores room (every fan gets each). */
  broadcastPerSecond: 1,
  /** Updates a second per match room (one every 5 s: score, minute, cards, stats). */
  matchUpdatesPerSecond: 0.2,
  /** Notifications a second over all user rooms. */
  userPerSecond: 1_000,
  /** A replica's busiest core should stay below this share, leaving room for a reconnect storm. */
  cpuHeadroom: 0.6,
  /** Descriptor limits to plan with: this machine's, and a typical raised one. */
  descriptorLimits: [20_000, 65_536],
};

export interface PaperRow {
  resource: string;
  measured: string;
  need: string;
  capacity: string;
  units: number;
}

export interface Paper {
  deliveriesPerSecond: number;
  publishesPerSecond: number;
  rows: PaperRow[];
  replicas: number;
  redisShards: number;
  /** Share of one Redis core the plan's steady load takes. */
  redisCoreShare: number;
  saturatesFirst: string;
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export function pastOneMachine(r: ScaleResult, redis: PubSubCapacity): Paper {
  const p = PLAN;
  // The costs of the last broadcast phase: the one at a rate the machine carried, when the first was not.
  const cost = r.broadcasts.at(-1)!;
  const deliveries = p.fans * p.broadcastPerSecond + p.matches * p.matchUpdatesPerSecond * (p.fans / p.matches) + p.userPerSecond;
  const publishes = p.broadcastPerSecond + p.matches * p.matchUpdatesPerSecond + p.userPerSecond;
  const rows: PaperRow[] = [];

  // Replica CPU: deliveries at the measured cost, each replica one event loop (one core) kept under the headroom.
  const coreSeconds = (deliveries * cost.replicasCpuUsPerDelivery) / 1e6;
  const forCpu = Math.ceil(coreSeconds / p.cpuHeadroom);
  rows.push({
    resource: 'replica CPU (fan-out)',
    measured: `${fmt(cost.replicasCpuUsPerDelivery, 1)} µs per delivery (replicas only)`,
    need: `${fmt(deliveries)} deliveries/s = ${fmt(coreSeconds, 1)} cores`,
    capacity: `one core per replica, used to ${p.cpuHeadroom * 100} %`,
    units: forCpu,
  });

  // Connections: each replica under its descriptor cap, and losing one must still fit everyone.
  const cap = (limit: number) => defaultMaxConnections(limit)!;
  const forFds = p.descriptorLimits.map((limit) => Math.ceil(p.fans / cap(limit)) + 1);
  rows.push({
    resource: 'descriptors (MAX_CONNECTIONS)',
    measured: p.descriptorLimits.map((l) => `${fmt(cap(l))} per replica at ulimit ${fmt(l)}`).join('; '),
    need: `${fmt(p.fans)} connections, and all of them again on N−1 replicas`,
    capacity: 'N − 1 replicas × MAX_CONNECTIONS ≥ fans',
    units: forFds[0]!,
  });
  const memory = (p.fans * r.memory.perConnectionBytes) / 2 ** 30;
  rows.push({
    resource: 'replica memory',
    measured: `${fmt(r.memory.perConnectionBytes)} B RSS per connection (all replicas' RSS / connections)`,
    need: `${fmt(memory, 1)} GiB over all replicas`,
    capacity: 'spread over the replicas above',
    units: 0,
  });

  // Redis: classic pub/sub sends every publish to every replica; with leastconn every replica has fans of every match, so sharded subscriptions save nothing here.
  const replicas = Math.max(forCpu, forFds[0]!);
  const out = publishes * replicas;
  const herald = cost.redisCpuUsPerPublish;
  const redisCore = (publishes * herald + out * redis.usPerDeliveryOut) / 1e6;
  rows.push({
    resource: 'Redis (pub/sub + history streams)',
    measured: `${fmt(herald)} µs Redis CPU per herald publish (history room: XADD + PUBLISH, ${r.options.replicas} subscribers) in the scenario; plain PUBLISH: ${fmt(redis.usPerMessageIn, 2)} µs in + ${fmt(redis.usPerDeliveryOut, 2)} µs per delivery out`,
    need: `${fmt(publishes)} publishes/s in, ${fmt(out)} messages/s out to ${replicas} replicas = ${fmt(redisCore * 100, 1)} % of a core`,
    capacity: `one core: ${fmt(1e6 / (herald + replicas * redis.usPerDeliveryOut))} such publishes/s to ${replicas} replicas`,
    units: Math.max(1, Math.ceil(redisCore / 0.5)),
  });
  const redisShards = Math.max(1, Math.ceil(redisCore / 0.5));

  // A replica lost: its fans reconnect, each costing Redis commands (session lookup, `since` catch-ups).
  const kill = r.storms.find((s) => s.kind === 'kill');
  if (kill && kill.droppedFans > 0) {
    const perReconnect = (kill.redis.commandsPerSecond * kill.redis.seconds) / kill.droppedFans;
    const storm = p.fans / replicas;
    rows.push({
      resource: 'Redis during a replica loss',
      measured: `${fmt(perReconnect, 1)} commands per reconnecting fan (kill -9 storm)`,
      need: `${fmt(storm)} fans reconnecting: ${fmt(storm * perReconnect)} commands`,
      capacity: `measured ${fmt(kill.redis.commandsPerSecond)} commands/s at ${fmt(kill.redis.cpuShare * 100, 1)} % of a core during the storm`,
      units: 0,
    });
  }
  const bottleneck = forCpu >= forFds[0]! ? 'replica CPU per delivery' : `descriptors (connections per replica at ulimit ${fmt(p.descriptorLimits[0]!)})`;
  return { deliveriesPerSecond: deliveries, publishesPerSecond: publishes, rows, replicas, redisShards, redisCoreShare: redisCore, saturatesFirst: bottleneck };
}

export function paperMarkdown(paper: Paper, r: ScaleResult): string {
  const p = PLAN;
  const lines = [
    '### Past one machine, on paper: 1M fans of 1,000 matches',
    '',
    `Load planned: ${fmt(p.fans)} fans, ${fmt(p.matches)} matches (${fmt(p.fans / p.matches)} fans each), every fan in the all-scores room (${p.broadcastPerSecond} broadcast/s), its match room (${p.matchUpdatesPerSecond} updates/s per match, one every ${fmt(1 / p.matchUpdatesPerSecond)} s) and its user room (${fmt(p.userPerSecond)} notifications/s over all users): ${fmt(paper.deliveriesPerSecond)} deliveries/s from ${fmt(paper.publishesPerSecond)} publishes/s. Costs are those measured above on this machine (${r.options.replicas} replicas, ${fmt(r.options.connections)} fans).`,
    '',
    '| Resource | Measured here | Needed | Capacity of one unit | Units |',
    '| --- | --- | --- | --- | --- |',
    ...paper.rows.map((row) => `| ${row.resource} | ${row.measured} | ${row.need} | ${row.capacity} | ${row.units || '—'} |`),
    '',
    `**Result:** ${paper.replicas} replicas (one event loop each; at ulimit ${fmt(p.descriptorLimits[0]!)} each holds at most ${fmt(defaultMaxConnections(p.descriptorLimits[0]!)!)} connections, and the fans still fit with one replica gone) and ${paper.redisShards === 1 ? 'one Redis core' : `${paper.redisShards} Redis Cluster shards`} (${fmt(paper.redisCoreShare * 100, 1)} % of a core in steady state). Saturates first: ${paper.saturatesFirst}. Every publish goes to every replica (classic pub/sub; with leastconn every replica has fans of every match, so sharded subscriptions would not narrow it), but there are only ${fmt(paper.publishesPerSecond)} publishes a second: the fan-out to a million sockets is the replicas' work. Redis Cluster becomes worth it when publishes × replicas approach a core (the Redis row), or for the memory of history streams.`,
  ];
  return lines.join('\n');
}
