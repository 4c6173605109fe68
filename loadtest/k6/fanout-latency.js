// fanout-latency: SUBSCRIBERS clients in one room, one publisher at RATE messages/s through the
// HTTP API; end-to-end latency (publish call to arrival), and missing or duplicate messages.
//   k6 run -e BASE_URL=http://localhost:8080 -e PUBLISH_KEY=... -e SUBSCRIBERS=500 -e RATE=20 loadtest/k6/fanout-latency.js
// COMPRESSION=1: subscribers offer permessage-deflate (k6/websockets' `compression: 'deflate'`,
// without context takeover, which is what herald's WS_COMPRESSION=on negotiates). SCORE=1: every
// message also carries a live-score update of about 400 bytes of JSON; the bare `{seq, sent}` is
// under the 128 bytes from which herald compresses. The summary shows bytes received per message.
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { setTimeout } from 'k6/timers';
import { deliveryTracker, missing, publish, subscribe, summary, SUMMARY_TREND_STATS } from './common.js';

const SUBSCRIBERS = Number(__ENV.SUBSCRIBERS || 100);
const RATE = Number(__ENV.RATE || 10);
const DURATION_S = Number(__ENV.DURATION_S || 30);
const WARMUP_S = Number(__ENV.WARMUP_S || 5);
/** Seconds subscribers stay after the last publish, for late messages. */
const DRAIN_S = Number(__ENV.DRAIN_S || 10);
const COMPRESSION = __ENV.COMPRESSION === '1';
const SCORE = __ENV.SCORE === '1';

const latency = new Trend('fanout_latency', true);
const published = new Counter('messages_published');

export const options = {
  scenarios: {
    subscribers: { executor: 'per-vu-iterations', vus: SUBSCRIBERS, iterations: 1, exec: 'subscriber', maxDuration: `${WARMUP_S + DURATION_S + DRAIN_S + 30}s` },
    publisher: {
      executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: `${DURATION_S}s`, startTime: `${WARMUP_S}s`,
      preAllocatedVUs: Math.max(2, Math.ceil(RATE / 50)), maxVUs: Math.max(10, RATE), exec: 'publisher',
    },
  },
  thresholds: {
    fanout_latency: ['p(99)<250'],
    messages_missing: ['count==0'],
    messages_duplicated: ['count==0'],
    subscribe_failures: ['count==0'],
    'http_req_failed{name:publish}': ['rate<0.01'],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

// setup() runs once and hands its result to every VU; init code runs once per VU, so a room
// made there from the clock would differ per subscriber.
export function setup() {
  return { room: __ENV.ROOM || `load:fanout-${Date.now()}` };
}

export function subscriber(data) {
  const deliveries = deliveryTracker();
  const ws = subscribe(data.room, {
    params: COMPRESSION ? { compression: 'deflate' } : undefined,
    onEvent(name, msg) {
      if (name !== 'load' || !msg || typeof msg.seq !== 'number') return;
      latency.add(Date.now() - msg.sent);
      deliveries.arrived(msg.seq);
    },
  });
  setTimeout(() => {
    deliveries.flush();
    ws.close();
  }, (WARMUP_S + DURATION_S + DRAIN_S) * 1000);
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
  ], [`bytes received per message received: ${bytesPerMessage(data)} (COMPRESSION=${COMPRESSION ? 1 : 0}, SCORE=${SCORE ? 1 : 0})`]);
}

function bytesPerMessage(data) {
  const bytes = data.metrics.data_received && data.metrics.data_received.values.count;
  const messages = data.metrics.messages_received && data.metrics.messages_received.values.count;
  return bytes && messages ? Math.round(bytes / messages) : 'n/a';
}
