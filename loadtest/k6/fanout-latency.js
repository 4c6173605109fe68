// fanout-latency: SUBSCRIBERS clients in one room, one publisher at RATE messages/s through the
// HTTP API; end-to-end latency (publish call to arrival), and missing or duplicate messages.
//   k6 run -e BASE_URL=http://localhost:8080 -e PUBLISH_KEY=... -e SUBSCRIBERS=500 -e RATE=20 loadtest/k6/fanout-latency.js
// P99_MS: the latency threshold (p99 below it, default 250 ms).
// COMPRESSION=1: subscribers offer permessage-deflate (k6/websockets' `compression: 'deflate'`,
// without context takeover, which is what herald's WS_COMPRESSION=on negotiates). SCORE=1: every
// message also carries a live-score update of about 400 bytes of JSON; the bare `{seq, sent}` is
// under the 128 bytes from which herald compresses.
// DELTA=1: subscribers ask for fossil deltas (`subscribe {room, delta: "fossil"}`) and apply them
// in k6's JavaScript (loadtest/lib/fossil.js), each only on the message it names as its base
// (`meta.base`), checksum verified, and the result checked against the score that was published
// (SCORE=1 is implied). The room must be a delta room: the gateways need a HISTORY_ROOMS pattern
// with ` delta` that matches it (the default room with DELTA=1 is `load:delta-<ms>`, so
// `HISTORY_ROOMS='load:delta-* delta'`). A delta on another base (`delta_wrong_base`), a failed
// checksum (`delta_checksum`), a malformed delta (`delta_malformed`) or a result that is not the
// published score (`delta_payload_mismatch`) is never delivered and fails the run.
// Every run reports the event frames' bytes per delivered message (`event_bytes`: the UTF-8 size of
// each published event's text frame, before any WebSocket compression) beside the latency.
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { setTimeout } from 'k6/timers';
import { deltaReceiver, utf8Length } from '../lib/fossil.js';
import { deliveryTracker, missing, publish, subscribe, summary, SUMMARY_TREND_STATS } from './common.js';

const SUBSCRIBERS = Number(__ENV.SUBSCRIBERS || 100);
const RATE = Number(__ENV.RATE || 10);
const DURATION_S = Number(__ENV.DURATION_S || 30);
const WARMUP_S = Number(__ENV.WARMUP_S || 5);
/** Seconds subscribers stay after the last publish, for late messages. */
const DRAIN_S = Number(__ENV.DRAIN_S || 10);
/** The latency threshold, p99 in ms. */
const P99_MS = Number(__ENV.P99_MS || 250);
const COMPRESSION = __ENV.COMPRESSION === '1';
const DELTA = __ENV.DELTA === '1';
const SCORE = __ENV.SCORE === '1' || DELTA;

const latency = new Trend('fanout_latency', true);
const published = new Counter('messages_published');
/**
 * Bytes of the text frames that carried published events (herald's own `herald:*` events left
 * out), counted per VU and added when it closes, like the delivery ledger: one metric sample per
 * message (its latency) is what k6 can afford at this rate.
 */
const eventBytes = new Counter('event_bytes');
const deltasApplied = new Counter('deltas_applied');
/** The frames of `deltas_applied`, already in `event_bytes`. */
const deltaBytes = new Counter('delta_bytes');
const deltaFailures = {
  delta_wrong_base: new Counter('delta_wrong_base'),
  delta_checksum: new Counter('delta_checksum'),
  delta_malformed: new Counter('delta_malformed'),
  delta_payload_mismatch: new Counter('delta_payload_mismatch'),
};

export const options = {
  scenarios: {
    subscribers: { executor: 'per-vu-iterations', vus: SUBSCRIBERS, iterations: 1, exec: 'subscriber', maxDuration: `${WARMUP_S + DURATION_S + DRAIN_S + 30}s` },
    publisher: {
      executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: `${DURATION_S}s`, startTime: `${WARMUP_S}s`,
      preAllocatedVUs: Math.max(2, Math.ceil(RATE / 50)), maxVUs: Math.max(10, RATE), exec: 'publisher',
    },
  },
  thresholds: {
    fanout_latency: [`p(99)<${P99_MS}`],
    messages_missing: ['count==0'],
    messages_duplicated: ['count==0'],
    subscribe_failures: ['count==0'],
    'http_req_failed{name:publish}': ['rate<0.01'],
    ...(DELTA
      ? {
          deltas_applied: ['count>0'],
          delta_wrong_base: ['count==0'],
          delta_checksum: ['count==0'],
          delta_malformed: ['count==0'],
          delta_payload_mismatch: ['count==0'],
        }
      : {}),
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

// setup() runs once and hands its result to every VU; init code runs once per VU, so a room
// made there from the clock would differ per subscriber.
export function setup() {
  return { room: __ENV.ROOM || `load:${DELTA ? 'delta' : 'fanout'}-${Date.now()}` };
}

export function subscriber(data) {
  const deliveries = deliveryTracker();
  const deltas = DELTA ? deltaReceiver() : undefined;
  const counts = { bytes: 0, deltas: 0, deltaBytes: 0 };
  const ws = subscribe(data.room, {
    params: COMPRESSION ? { compression: 'deflate' } : undefined,
    delta: DELTA ? 'fossil' : undefined,
    onEvent(name, msg, meta, frame) {
      if (name !== 'load') return;
      const bytes = utf8Length(frame);
      counts.bytes += bytes;
      if (deltas) {
        msg = applied(deltas, msg, meta, bytes, counts);
        if (msg === undefined) return;
      }
      if (!msg || typeof msg.seq !== 'number') return;
      latency.add(Date.now() - msg.sent);
      deliveries.arrived(msg.seq);
    },
  });
  setTimeout(() => {
    deliveries.flush();
    eventBytes.add(counts.bytes);
    if (DELTA) {
      deltasApplied.add(counts.deltas);
      deltaBytes.add(counts.deltaBytes);
      // Zero samples, so the summary shows 0 rather than n/a.
      for (const c of Object.values(deltaFailures)) c.add(0);
    }
    ws.close();
  }, (WARMUP_S + DURATION_S + DRAIN_S) * 1000);
}

let warnedDelta = false;
/**
 * The whole payload of an event in a delta subscription, or undefined (counted in the metric of
 * its failure) when it is a delta that cannot be applied or whose result is not the published score.
 */
function applied(deltas, msg, meta, bytes, counts) {
  let r;
  try {
    r = deltas.receive(msg, meta);
  } catch (e) {
    const code = deltaFailures[e.code] ? e.code : 'delta_malformed';
    deltaFailures[code].add(1);
    if (!warnedDelta) {
      warnedDelta = true;
      console.warn(`delta not applied: ${e.message}`);
    }
    return undefined;
  }
  if (!r.delta) return r.data;
  counts.deltas++;
  counts.deltaBytes += bytes;
  if (!r.data || typeof r.data.seq !== 'number' || JSON.stringify(r.data.score) !== JSON.stringify(scoreUpdate(r.data.seq))) {
    deltaFailures.delta_payload_mismatch.add(1);
    return undefined;
  }
  return r.data;
}

export function publisher(data) {
  const seq = exec.scenario.iterationInTest + 1;
  if (publish(data.room, seq, SCORE ? { score: scoreUpdate(seq) } : undefined)) {
    published.add(1);
    missing.add(SUBSCRIBERS);
  }
}

/** A live-score update as a match page receives it: about 400 bytes of JSON. */
function scoreUpdate(n) {
  return {
    match: 'epl-2026-27-md14-ars-che',
    status: 'live',
    minute: 1 + (n % 90),
    home: { id: 'ars', name: 'Arsenal', score: 2 },
    away: { id: 'che', name: 'Chelsea', score: 1 },
    lastEvent: { type: 'goal', team: 'ars', player: 'B. Saka', minute: 66, assist: 'M. Odegaard' },
    stats: { possession: [56, 44], shots: [14, 8], shotsOnTarget: [6, 3], corners: [7, 2], fouls: [9, 12], yellowCards: [1, 2], redCards: [0, 0] },
    updatedAt: new Date(1795239768439 + n * 1000).toISOString(),
  };
}

export function handleSummary(data) {
  return summary(data, 'fanout-latency', [
    ['latency p50 (ms)', 'fanout_latency', 'med'],
    ['latency p95 (ms)', 'fanout_latency', 'p(95)'],
    ['latency p99 (ms)', 'fanout_latency', 'p(99)'],
    ['published', 'messages_published', 'count'],
    ['received', 'messages_received', 'count'],
    ['missing (published x subscribers - received once)', 'messages_missing', 'count'],
    ['duplicates', 'messages_duplicated', 'count'],
    ['subscribe failures', 'subscribe_failures', 'count'],
    ['bytes received (all connections, HTTP included)', 'data_received', 'count'],
    ['event frame bytes (published events, uncompressed)', 'event_bytes', 'count'],
    ...(DELTA
      ? [
          ['deltas applied', 'deltas_applied', 'count'],
          ['delta frame bytes', 'delta_bytes', 'count'],
          ['deltas on a wrong base', 'delta_wrong_base', 'count'],
          ['deltas with a bad checksum', 'delta_checksum', 'count'],
          ['malformed deltas', 'delta_malformed', 'count'],
          ['deltas not rebuilding the published score', 'delta_payload_mismatch', 'count'],
        ]
      : []),
  ], [
    `event frame bytes per delivered message: ${ratio(data, 'event_bytes', 'messages_received', 10)}`,
    ...(DELTA ? [`event frame bytes per delta: ${ratio(data, 'delta_bytes', 'deltas_applied', 10)}`] : []),
    `bytes received per message received: ${ratio(data, 'data_received', 'messages_received', 1)}`,
    `mode: COMPRESSION=${COMPRESSION ? 1 : 0}, SCORE=${SCORE ? 1 : 0}, DELTA=${DELTA ? 1 : 0}`,
  ]);
}

/** Count of `a` over count of `b`, rounded to 1/`scale`. */
function ratio(data, a, b, scale) {
  const x = data.metrics[a] && data.metrics[a].values.count;
  const y = data.metrics[b] && data.metrics[b].values.count;
  return x && y ? Math.round((x / y) * scale) / scale : 'n/a';
}
