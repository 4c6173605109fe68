// throughput: subscribers spread over ROOMS rooms, a publish rate rising in stages to MAX_RATE;
// deliveries and latency as the rate climbs show where the cluster saturates.
//   k6 run -e BASE_URL=... -e PUBLISH_KEY=... -e ROOMS=100 -e SUBSCRIBERS=2000 -e MAX_RATE=2000 loadtest/k6/throughput.js
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { setTimeout } from 'k6/timers';
import { publish, subscribe, summary } from './common.js';

const ROOMS = Number(__ENV.ROOMS || 50);
const SUBSCRIBERS = Number(__ENV.SUBSCRIBERS || 500);
const MAX_RATE = Number(__ENV.MAX_RATE || 1000);
const STAGE_S = Number(__ENV.STAGE_S || 20);
const STAGES = 5;
const prefix = __ENV.ROOM_PREFIX || `load:tp-${Date.now()}`;

const latency = new Trend('fanout_latency', true);
const received = new Counter('messages_received');
const published = new Counter('messages_published');

export const options = {
  scenarios: {
    subscribers: { executor: 'per-vu-iterations', vus: SUBSCRIBERS, iterations: 1, exec: 'subscriber', maxDuration: `${STAGES * STAGE_S + 60}s` },
    publisher: {
      executor: 'ramping-arrival-rate', startRate: Math.max(1, Math.round(MAX_RATE / STAGES)), timeUnit: '1s', startTime: '10s',
      preAllocatedVUs: 20, maxVUs: Math.max(50, Math.ceil(MAX_RATE / 10)), exec: 'publisher',
      stages: Array.from({ length: STAGES }, (_, i) => ({ target: Math.round((MAX_RATE * (i + 1)) / STAGES), duration: `${STAGE_S}s` })),
    },
  },
  thresholds: { fanout_latency: ['p(99)<1000'], 'http_req_failed{name:publish}': ['rate<0.01'] },
};

export function subscriber() {
  const room = `${prefix}-${(exec.vu.idInTest - 1) % ROOMS}`;
  const ws = subscribe(room, {
    onEvent(name, data) {
      if (!data || typeof data.sent !== 'number') return;
      received.add(1);
      latency.add(Date.now() - data.sent);
    },
  });
  setTimeout(() => ws.close(), (10 + STAGES * STAGE_S + 10) * 1000);
}

export function publisher() {
  const i = exec.scenario.iterationInTest;
  if (publish(`${prefix}-${i % ROOMS}`, i + 1).status === 200) published.add(1);
}

export function handleSummary(data) {
  return summary(data, 'throughput', [
    ['published', 'messages_published', 'count'],
    ['deliveries', 'messages_received', 'count'],
    ['deliveries/s (average)', 'messages_received', 'rate'],
    ['latency p50 (ms)', 'fanout_latency', 'med'],
    ['latency p99 (ms)', 'fanout_latency', 'p(99)'],
  ]);
}
