// connections: ramp to TARGET idle connections and hold them for HOLD_S; watch the replicas'
// memory (herald_process_resident_memory_bytes) while it runs to get memory per connection.
//   k6 run -e BASE_URL=... -e TARGET=20000 -e HOLD_S=60 loadtest/k6/connections.js
import { Counter, Trend } from 'k6/metrics';
import { setTimeout } from 'k6/timers';
import { subscribe, summary } from './common.js';

const TARGET = Number(__ENV.TARGET || 1000);
const RAMP_S = Number(__ENV.RAMP_S || 60);
const HOLD_S = Number(__ENV.HOLD_S || 60);

const connectTime = new Trend('subscribe_time', true);
const subscribed = new Counter('connections_subscribed');
const failures = new Counter('connection_failures');

export const options = {
  scenarios: {
    idle: { executor: 'ramping-vus', startVUs: 0, stages: [{ target: TARGET, duration: `${RAMP_S}s` }, { target: TARGET, duration: `${HOLD_S}s` }], gracefulRampDown: '0s' },
  },
  thresholds: { connection_failures: ['count<1'], subscribe_time: ['p(95)<2000'] },
};

export default function () {
  const started = Date.now();
  const ws = subscribe('load:idle', {
    onSubscribed() {
      connectTime.add(Date.now() - started);
      subscribed.add(1);
    },
    onError() {
      failures.add(1);
    },
  });
  setTimeout(() => ws.close(), (RAMP_S + HOLD_S) * 1000);
}

export function handleSummary(data) {
  return summary(data, 'connections', [
    ['subscribed', 'connections_subscribed', 'count'],
    ['failures', 'connection_failures', 'count'],
    ['connect+subscribe p95 (ms)', 'subscribe_time', 'p(95)'],
  ]);
}
