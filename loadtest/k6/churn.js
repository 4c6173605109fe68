// churn: connect → subscribe → disconnect storms at RATE per second. To see a reconnect avalanche,
// run it while restarting a replica (docker compose restart gateway, kubectl rollout restart).
//   k6 run -e BASE_URL=... -e RATE=50 -e DURATION_S=30 loadtest/k6/churn.js
import { Counter, Trend } from 'k6/metrics';
import { subscribe, summary, SUMMARY_TREND_STATS } from './common.js';

const RATE = Number(__ENV.RATE || 50);
const DURATION_S = Number(__ENV.DURATION_S || 30);
const ROOM = __ENV.ROOM || 'load:churn';

const cycleTime = new Trend('churn_cycle_time', true);
const ok = new Counter('churn_ok');

export const options = {
  scenarios: {
    storm: { executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: `${DURATION_S}s`, preAllocatedVUs: Math.max(10, RATE), maxVUs: RATE * 5 },
  },
  thresholds: {
    subscribe_failures: ['count==0'],
    // Cycles k6 could not start for lack of VUs: the storm ran below RATE.
    dropped_iterations: ['count==0'],
    churn_cycle_time: ['p(95)<1000'],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export default function () {
  const started = Date.now();
  const ws = subscribe(ROOM, {
    onSubscribed() {
      cycleTime.add(Date.now() - started);
      ok.add(1);
      ws.close();
    },
    onFailed() {
      ws.close();
    },
  });
}

export function handleSummary(data) {
  return summary(data, 'churn', [
    ['cycles ok', 'churn_ok', 'count'],
    ['cycles failed (subscribe failures)', 'subscribe_failures', 'count'],
    ['cycles not started (dropped iterations)', 'dropped_iterations', 'count'],
    ['cycle p50 (ms)', 'churn_cycle_time', 'med'],
    ['cycle p95 (ms)', 'churn_cycle_time', 'p(95)'],
    ['cycle p99 (ms)', 'churn_cycle_time', 'p(99)'],
  ]);
}
