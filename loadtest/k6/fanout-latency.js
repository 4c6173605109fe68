// fanout-latency: SUBSCRIBERS clients in one room, one publisher at RATE messages/s through the
// HTTP API; end-to-end latency (publish call to arrival), and missing or duplicate messages.
//   k6 run -e BASE_URL=http://localhost:8080 -e PUBLISH_KEY=... -e SUBSCRIBERS=1000 -e RATE=100 loadtest/k6/fanout-latency.js
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { setTimeout } from 'k6/timers';
import { publish, subscribe, summary } from './common.js';

const SUBSCRIBERS = Number(__ENV.SUBSCRIBERS || 100);
const RATE = Number(__ENV.RATE || 10);
const DURATION_S = Number(__ENV.DURATION_S || 30);
const WARMUP_S = Number(__ENV.WARMUP_S || 5);
const ROOM = __ENV.ROOM || `load:fanout-${Date.now()}`;

const latency = new Trend('fanout_latency', true);
const received = new Counter('messages_received');
const duplicates = new Counter('messages_duplicated');
const published = new Counter('messages_published');

export const options = {
  scenarios: {
    subscribers: { executor: 'per-vu-iterations', vus: SUBSCRIBERS, iterations: 1, exec: 'subscriber', maxDuration: `${WARMUP_S + DURATION_S + 30}s` },
    publisher: {
      executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: `${DURATION_S}s`, startTime: `${WARMUP_S}s`,
      preAllocatedVUs: Math.max(2, Math.ceil(RATE / 50)), maxVUs: Math.max(10, RATE), exec: 'publisher',
    },
  },
  thresholds: {
    fanout_latency: ['p(99)<250'],
    messages_duplicated: ['count==0'],
    'http_req_failed{name:publish}': ['rate<0.01'],
  },
};

export function subscriber() {
  const seen = {};
  const ws = subscribe(ROOM, {
    onEvent(name, data) {
      if (!data || typeof data.seq !== 'number') return;
      latency.add(Date.now() - data.sent);
      received.add(1);
      if (seen[data.seq]) duplicates.add(1);
      seen[data.seq] = true;
    },
  });
  setTimeout(() => ws.close(), (WARMUP_S + DURATION_S + 10) * 1000);
}

export function publisher() {
  const res = publish(ROOM, exec.scenario.iterationInTest + 1);
  if (res.status === 200) published.add(1);
}

export function handleSummary(data) {
  const pub = data.metrics.messages_published ? data.metrics.messages_published.values.count : 0;
  const rec = data.metrics.messages_received ? data.metrics.messages_received.values.count : 0;
  const out = summary(data, 'fanout-latency', [
    ['latency p50 (ms)', 'fanout_latency', 'med'],
    ['latency p95 (ms)', 'fanout_latency', 'p(95)'],
    ['latency p99 (ms)', 'fanout_latency', 'p(99)'],
    ['published', 'messages_published', 'count'],
    ['received', 'messages_received', 'count'],
    ['duplicates', 'messages_duplicated', 'count'],
  ]);
  out.stdout += `  missing: ${pub * SUBSCRIBERS - rec} (published x subscribers - received)\n`;
  return out;
}
