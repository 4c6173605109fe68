// connections: ramp to TARGET idle subscribed connections over RAMP_S and hold them for HOLD_S;
// watch the replicas' memory (herald_process_resident_memory_bytes) while it runs to get memory
// per connection.
//   k6 run -e BASE_URL=... -e TARGET=5000 -e HOLD_S=60 loadtest/k6/connections.js
import { sleep } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { setTimeout } from 'k6/timers';
import { subscribe, summary, SUMMARY_TREND_STATS } from './common.js';

const TARGET = Number(__ENV.TARGET || 1000);
const RAMP_S = Number(__ENV.RAMP_S || 60);
const HOLD_S = Number(__ENV.HOLD_S || 60);
const ROOM = __ENV.ROOM || 'load:idle';

const connectTime = new Trend('subscribe_time', true);
const subscribed = new Counter('connections_subscribed');
const dropped = new Counter('connections_dropped');

export const options = {
  scenarios: {
    idle: { executor: 'ramping-vus', startVUs: 0, stages: [{ target: TARGET, duration: `${RAMP_S}s` }, { target: TARGET, duration: `${HOLD_S}s` }], gracefulRampDown: '0s' },
  },
  thresholds: {
    subscribe_failures: ['count==0'],
    connections_dropped: ['count==0'],
    // Every VU holds one subscribed connection, so the full ramp subscribes TARGET of them.
    connections_subscribed: [`count>=${TARGET}`],
    subscribe_time: ['p(95)<2000'],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export default function () {
  // One connection per VU: its iteration lasts until the hold ends, so a second one starts only
  // in the scenario's last moments, and would count a connection closed before its ack.
  if (exec.vu.iterationInScenario > 0) {
    sleep(1);
    return;
  }
  const started = Date.now();
  // Every connection closes when the hold ends, whenever its VU joined the ramp.
  const closeAt = exec.scenario.startTime + (RAMP_S + HOLD_S) * 1000;
  let closing = false;
  let up = false;
  const ws = subscribe(ROOM, {
    onSubscribed() {
      up = true;
      connectTime.add(Date.now() - started);
      subscribed.add(1);
    },
    onFailed() {
      // Counted by common.js. The VU stays idle until the hold ends: one attempt per VU.
      closing = true;
      ws.close();
    },
    onClose() {
      if (up && !closing) dropped.add(1);
    },
  });
  setTimeout(() => {
    closing = true;
    ws.close();
  }, Math.max(0, closeAt - Date.now()));
}

export function handleSummary(data) {
  return summary(data, 'connections', [
    ['subscribed', 'connections_subscribed', 'count'],
    ['subscribe failures', 'subscribe_failures', 'count'],
    ['dropped while held', 'connections_dropped', 'count'],
    ['connect+subscribe p50 (ms)', 'subscribe_time', 'med'],
    ['connect+subscribe p95 (ms)', 'subscribe_time', 'p(95)'],
    ['connect+subscribe p99 (ms)', 'subscribe_time', 'p(99)'],
  ]);
}
