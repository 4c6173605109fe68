/**
 * The k6 scenarios (loadtest/k6/) as Node code that runs here: same wire protocol module, same
 * shapes of load, results as plain objects for the report.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { ConnectionReport, WorkerReport } from './protocol.js';
import { publishAtRate, type PublishTarget } from './publisher.js';
import { clientLoad, loopbackAddresses, type Workers } from './workers.js';

export interface Target extends PublishTarget {
  /** Where the publisher posts; defaults to `urls` (the clients' servers). */
  publishUrls?: string[];
  /** Resident memory of the server processes, for per-connection cost; optional. */
  rss?: () => Promise<number>;
}

const publishTarget = (t: Target): PublishTarget => ({ urls: t.publishUrls ?? t.urls, key: t.key, pusher: t.pusher });

export interface Latency {
  samples: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function percentiles(samples: number[]): Latency {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => (s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(p * s.length))]!);
  return { samples: s.length, p50: q(0.5), p95: q(0.95), p99: q(0.99), max: s.at(-1) ?? NaN };
}

const ADDRESSES = loopbackAddresses(16);

/** Splits `total` connections over the workers and opens them. */
async function openAll(workers: Workers, target: Target, total: number, rooms: string[], track: 'seq' | 'count', sampleEvery = 1, delta = false, sse = false) {
  const per = Math.ceil(total / workers.size);
  const opened = await workers.all(
    (i) => ({
      cmd: 'open',
      urls: target.urls,
      count: Math.max(0, Math.min(per, total - i * per)),
      rooms,
      roomOffset: i * per,
      localAddresses: ADDRESSES,
      track,
      sampleEvery,
      concurrency: 100,
      ...(delta ? { delta } : {}),
      ...(sse ? { sse } : {}),
      ...(target.pusher ? { pusher: target.pusher } : {}),
    }),
    'opened',
  );
  return { connected: opened.reduce((a, o) => a + o.connected, 0), failed: opened.reduce((a, o) => a + o.failedConnects, 0) };
}

function merge(reports: WorkerReport[]) {
  return {
    delivered: reports.reduce((a, r) => a + r.delivered, 0),
    bytes: reports.reduce((a, r) => a + (r.bytes ?? 0), 0),
    deltas: reports.reduce((a, r) => a + (r.deltas ?? 0), 0),
    wrongBases: reports.reduce((a, r) => a + (r.wrongBases ?? 0), 0),
    samples: reports.flatMap((r) => r.samples),
    connections: reports.flatMap((r) => r.perConnection),
  };
}

/** Waits until delivery stops growing (the tail has drained), bounded. */
async function settle(workers: Workers, expected: number, maxMs = 10_000): Promise<WorkerReport[]> {
  const deadline = Date.now() + maxMs;
  let last = -1;
  let reports: WorkerReport[] = [];
  let delivered = 0;
  for (;;) {
    const now = await workers.reports();
    reports =
      reports.length === 0
        ? now
        : reports.map((r, i) => ({
            ...now[i]!,
            delivered: r.delivered + now[i]!.delivered,
            bytes: r.bytes + now[i]!.bytes,
            deltas: r.deltas + now[i]!.deltas,
            wrongBases: r.wrongBases + now[i]!.wrongBases,
            samples: r.samples.concat(now[i]!.samples),
          }));
    delivered = reports.reduce((a, r) => a + r.delivered, 0);
    if (delivered >= expected || delivered === last || Date.now() > deadline) return reports;
    last = delivered;
    await delay(250);
  }
}

/** Missing and duplicate messages over all connections, against what each room accepted. */
function accounting(connections: ConnectionReport[], accepted: Record<string, number>) {
  let missing = 0;
  let duplicates = 0;
  for (const c of connections) {
    missing += Math.max(0, (accepted[c.room] ?? 0) - c.unique);
    duplicates += c.duplicates;
  }
  return { missing, duplicates };
}

/** A live score (about 400 bytes as JSON with `seq` and `sent`) whose other fields stay: what `delta` runs publish. */
export const SCORE_FIELDS = Object.freeze({
  match: 'match-42',
  competition: 'Premier League',
  home: { team: 'Northfield Rovers', short: 'NFR', goals: 2, cards: { yellow: 1, red: 0 } },
  away: { team: 'Southgate Albion', short: 'SGA', goals: 1, cards: { yellow: 2, red: 0 } },
  period: 'second-half',
  possession: { home: 54, away: 46 },
  venue: 'Riverside Stadium, North Stand entrance C',
  referee: 'A. Example',
  updatedBy: 'feed-3',
});

/**
 * `fanout-latency`: N subscribers in one room, a publisher at a fixed rate; end-to-end latency,
 * missing, duplicates, and bytes per delivered message. With `delta` (DELTA=1) the subscribers ask
 * for fossil deltas and apply them, the messages are score objects (`SCORE_FIELDS`, two fields
 * changing per message), and the room must be a delta room on the server (HISTORY_ROOMS
 * `load:* delta`); a delta on another base is counted (`wrongBases`) and never applied.
 */
export async function fanoutLatency(
  workers: Workers,
  target: Target,
  o: {
    subscribers: number;
    rate: number;
    seconds: number;
    delta?: boolean;
    /** Publish score objects (`SCORE_FIELDS`); defaults to `delta`. */
    score?: boolean;
    /** Cumulative counters (CPU seconds of some processes, say): `opening` has their change over the connects and subscribes, `during` over the publishing and its tail, the closes left out of both. */
    counters?: Record<string, () => number>;
  },
) {
  const room = `load:fanout-${Date.now()}`;
  const read = () => Object.entries(o.counters ?? {}).map(([k, r]) => [k, r()] as const);
  const start = read();
  const open = await openAll(workers, target, o.subscribers, [room], 'seq', 1, o.delta === true);
  await workers.reports();
  const mark = workers.mark();
  const before = read();
  const opening = Object.fromEntries(start.map(([k, v], i) => [k, before[i]![1] - v]));
  const pub = await publishAtRate(publishTarget(target), [room], o.rate, o.seconds, (o.score ?? o.delta) ? { fields: SCORE_FIELDS } : {});
  const expected = (pub.accepted[room] ?? 0) * open.connected;
  const m = merge(await settle(workers, expected));
  const during = Object.fromEntries(before.map(([k, v]) => [k, o.counters![k]!() - v]));
  const client = clientLoad(mark, workers.mark());
  await workers.all(() => ({ cmd: 'close' }), 'closed');
  return {
    scenario: 'fanout-latency',
    subscribers: open.connected,
    failedConnects: open.failed,
    rate: o.rate,
    published: pub.accepted[room] ?? 0,
    publishFailures: pub.failed,
    delivered: m.delivered,
    expected,
    ...accounting(m.connections, pub.accepted),
    bytesPerDelivery: m.delivered > 0 ? Math.round((m.bytes / m.delivered) * 10) / 10 : NaN,
    ...(o.delta ? { deltas: m.deltas, wrongBases: m.wrongBases } : {}),
    latencyMs: percentiles(m.samples),
    client,
    opening,
    during,
  };
}

/** `throughput`: rising publish rate over many rooms, deliveries/s and latency per step, up to saturation. */
export async function throughput(
  workers: Workers,
  target: Target,
  o: {
    rooms: number;
    subscribersPerRoom: number;
    rates: number[];
    secondsPerStep: number;
    sampleEvery?: number;
    /** Cumulative counters (CPU seconds of some processes, say); each step reports their change. */
    counters?: Record<string, () => number>;
    /**
     * Stop after this many saturated steps in a row (default 1). Past its knee a WebSocket server
     * can fall into a slow regime from one transient stall (a client that momentarily stops
     * reading turns every later send into a syscall of its own), so one saturated step below
     * the knee says less than the steps after it. Infinity: run every step.
     */
    patience?: number;
    /** Publish requests in flight at most (default 64). */
    inFlight?: number;
  },
) {
  const rooms = Array.from({ length: o.rooms }, (_, i) => `load:tp-${Date.now()}-${i}`);
  const open = await openAll(workers, target, o.rooms * o.subscribersPerRoom, rooms, 'count', o.sampleEvery ?? 50);
  const steps = [];
  let saturatedInARow = 0;
  for (const rate of o.rates) {
    await workers.reports();
    const started = Date.now();
    const before = Object.entries(o.counters ?? {}).map(([k, read]) => [k, read()] as const);
    const mark = workers.mark();
    const pub = await publishAtRate(publishTarget(target), rooms, rate, o.secondsPerStep, { inFlight: o.inFlight ?? 64 });
    const published = Object.values(pub.accepted).reduce((a, b) => a + b, 0);
    const expected = published * o.subscribersPerRoom;
    const m = merge(await settle(workers, expected, 5000));
    const seconds = (Date.now() - started) / 1000;
    const client = clientLoad(mark, workers.mark());
    const counters = Object.fromEntries(before.map(([k, v]) => [k, o.counters![k]!() - v]));
    const deliveredShare = expected === 0 ? 0 : m.delivered / expected;
    // Saturated: the server no longer keeps up with what was offered. The publisher keeps a
    // bounded number of requests in flight, so a server that answers slowly shows up as a
    // publish rate below the one asked for, and one that falls behind as missing deliveries.
    const saturated = deliveredShare < 0.9 || pub.achievedRate < 0.9 * rate;
    steps.push({
      rate,
      seconds,
      counters,
      achievedPublishRate: Math.round(pub.achievedRate),
      published,
      /** Deliveries owed (published × subscribers per room) and made; a step that kept up has them equal. */
      expected,
      delivered: m.delivered,
      deliveriesPerSecond: Math.round(m.delivered / seconds),
      deliveredShare,
      saturated,
      latencyMs: percentiles(m.samples),
      /** The client core's share used by the client processes; above 80 % the step is client-bound. */
      client,
    });
    saturatedInARow = saturated ? saturatedInARow + 1 : 0;
    if (saturatedInARow >= (o.patience ?? 1)) break;
  }
  await workers.all(() => ({ cmd: 'close' }), 'closed');
  return {
    scenario: 'throughput',
    connections: open.connected,
    failedConnects: open.failed,
    steps,
    /**
     * The most deliveries/s at a step the server kept up with and the client was not the limit of
     * (any step not client-bound, if it kept up with none); 0 when every step was client-bound.
     */
    maxDeliveriesPerSecond: ceiling(steps.filter((s) => !s.client.clientBound)),
    /** The same over every step, client-bound ones included: what the harness saw at most. */
    maxDeliveriesPerSecondAnyClient: ceiling(steps),
  };
}

/** The most deliveries/s of steps the server kept up with, or of any of them if it kept up with none. */
function ceiling(steps: { saturated: boolean; deliveriesPerSecond: number }[]): number {
  const kept = steps.filter((s) => !s.saturated);
  return Math.max(0, ...(kept.length > 0 ? kept : steps).map((s) => s.deliveriesPerSecond));
}

/** `connections`: ramp to `count` idle connections and hold; memory per connection. */
export async function connections(workers: Workers, target: Target, o: { count: number; holdSeconds: number }) {
  const rssBefore = target.rss ? await target.rss() : undefined;
  const started = Date.now();
  const open = await openAll(workers, target, o.count, ['load:idle'], 'count', 1000);
  const rampSeconds = (Date.now() - started) / 1000;
  await delay(o.holdSeconds * 1000);
  const still = (await workers.reports()).reduce((a, r) => a + r.connected, 0);
  const rssAfter = target.rss ? await target.rss() : undefined;
  await workers.all(() => ({ cmd: 'close' }), 'closed');
  return {
    scenario: 'connections',
    target: o.count,
    connected: open.connected,
    failedConnects: open.failed,
    heldAfter: still,
    rampSeconds,
    rssBefore,
    rssAfter,
    bytesPerConnection: rssBefore !== undefined && rssAfter !== undefined && open.connected > 0 ? Math.round((rssAfter - rssBefore) / open.connected) : undefined,
  };
}

/** `churn`: connect/subscribe/disconnect storms. */
export async function churn(workers: Workers, target: Target, o: { cycles: number; concurrency: number }) {
  const per = Math.ceil(o.cycles / workers.size);
  const started = Date.now();
  const r = await workers.all(
    () => ({ cmd: 'churn', urls: target.urls, rooms: ['load:churn'], localAddresses: ADDRESSES, cycles: per, concurrency: o.concurrency }),
    'churned',
  );
  const ok = r.reduce((a, x) => a + x.ok, 0);
  const seconds = (Date.now() - started) / 1000;
  return { scenario: 'churn', cycles: per * workers.size, ok, failed: r.reduce((a, x) => a + x.failed, 0), perSecond: Math.round(ok / seconds) };
}

/** `recovery`: clients that drop and come back with `since` while messages flow; gaps and duplicates. */
export async function recovery(workers: Workers, target: Target, o: { clients: number; rate: number; seconds: number; room: string; drops: number }) {
  const open = await openAll(workers, target, o.clients, [o.room], 'seq');
  const publishing = publishAtRate(publishTarget(target), [o.room], o.rate, o.seconds);
  for (let phase = 0; phase < o.drops; phase++) {
    await delay((o.seconds * 1000) / (o.drops + 1));
    await workers.all(() => ({ cmd: 'drop', every: o.drops, phase, concurrency: 50 }), 'dropped');
  }
  const pub = await publishing;
  const expected = (pub.accepted[o.room] ?? 0) * open.connected;
  const m = merge(await settle(workers, expected));
  await workers.all(() => ({ cmd: 'close' }), 'closed');
  return {
    scenario: 'recovery',
    clients: open.connected,
    published: pub.accepted[o.room] ?? 0,
    reconnects: m.connections.reduce((a, c) => a + c.reconnects, 0),
    recovered: m.connections.reduce((a, c) => a + c.recovered, 0),
    unrecovered: m.connections.reduce((a, c) => a + c.unrecovered, 0),
    ...accounting(m.connections, pub.accepted),
    latencyMs: percentiles(m.samples),
  };
}

/**
 * `sse-fanout`: `streams` Server-Sent Events readers (`GET /v1/stream?room=`, raw sockets in the
 * worker processes, sseclient.ts) follow one room while a publisher posts at `rate`/s for
 * `seconds`; end-to-end latency (publish call → arrival), missing and duplicate messages, and the
 * `data:` bytes per delivery, as `fanout-latency` reports for Socket.IO. With `drops` (and a
 * history room: `room`, e.g. one HISTORY_ROOMS covers), a share of the streams is cut that many
 * times while the publisher runs and each comes back with its `Last-Event-ID`, as EventSource
 * does: `recovered`/`unrecovered` count those resumes, and missing/duplicates stay 0 when resume
 * holds. Streams count against SSE_STREAMS_PER_IP and CONNECT_BURST_PER_IP per source address
 * (16 loopback addresses here): raise them for more than 1,600 streams.
 */
export async function sseFanout(
  workers: Workers,
  target: Target,
  o: {
    streams: number;
    rate: number;
    seconds: number;
    /** Default: a fresh room without history. */
    room?: string;
    drops?: number;
    /** Cumulative counters (CPU seconds, say): their change over the publishing and its tail. */
    counters?: Record<string, () => number>;
  },
) {
  const room = o.room ?? `load:sse-${Date.now()}`;
  const drops = o.drops ?? 0;
  const open = await openAll(workers, target, o.streams, [room], 'seq', 1, false, true);
  await workers.reports();
  const mark = workers.mark();
  const before = Object.entries(o.counters ?? {}).map(([k, read]) => [k, read()] as const);
  const publishing = publishAtRate(publishTarget(target), [room], o.rate, o.seconds);
  for (let phase = 0; phase < drops; phase++) {
    // Spread over the run: the publisher's clock, not a wait for a condition.
    await delay((o.seconds * 1000) / (drops + 1));
    await workers.all(() => ({ cmd: 'drop', every: drops, phase, concurrency: 50 }), 'dropped');
  }
  const pub = await publishing;
  const expected = (pub.accepted[room] ?? 0) * open.connected;
  const m = merge(await settle(workers, expected));
  const during = Object.fromEntries(before.map(([k, v]) => [k, o.counters![k]!() - v]));
  const client = clientLoad(mark, workers.mark());
  await workers.all(() => ({ cmd: 'close' }), 'closed');
  return {
    scenario: 'sse-fanout',
    streams: open.connected,
    failedConnects: open.failed,
    rate: o.rate,
    published: pub.accepted[room] ?? 0,
    publishFailures: pub.failed,
    delivered: m.delivered,
    expected,
    ...accounting(m.connections, pub.accepted),
    reconnects: m.connections.reduce((a, c) => a + c.reconnects, 0),
    recovered: m.connections.reduce((a, c) => a + c.recovered, 0),
    unrecovered: m.connections.reduce((a, c) => a + c.unrecovered, 0),
    bytesPerDelivery: m.delivered > 0 ? Math.round((m.bytes / m.delivered) * 10) / 10 : NaN,
    latencyMs: percentiles(m.samples),
    client,
    during,
  };
}
