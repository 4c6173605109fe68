// throughput: subscribers spread over ROOMS rooms, a publish rate rising in 5 steps of STAGE_S
// seconds to MAX_RATE; deliveries and latency per step show where the cluster saturates.
//   k6 run -e BASE_URL=... -e PUBLISH_KEY=... -e ROOMS=50 -e SUBSCRIBERS=500 -e MAX_RATE=1000 loadtest/k6/throughput.js
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { setTimeout } from 'k6/timers';
import { deliveryTracker, missing, publish, stat, subscribe, summary, SUMMARY_TREND_STATS } from './common.js';

const ROOMS = Number(__ENV.ROOMS || 50);
const SUBSCRIBERS = Number(__ENV.SUBSCRIBERS || 500);
const MAX_RATE = Number(__ENV.MAX_RATE || 500);
const STAGE_S = Number(__ENV.STAGE_S || 20);
const WARMUP_S = Number(__ENV.WARMUP_S || 10);
/** Seconds subscribers stay after the last publish, for late messages. */
const DRAIN_S = Number(__ENV.DRAIN_S || 10);
const STAGES = 5;
/** Publishes per second in step s (1-based). */
const rateOf = (s) => Math.max(1, Math.round((MAX_RATE * s) / STAGES));
/** Subscriber i is in room i % ROOMS, so room r has this many. */
const subscribersIn = (r) => Math.floor(SUBSCRIBERS / ROOMS) + (r < SUBSCRIBERS % ROOMS ? 1 : 0);
const STEPS = Array.from({ length: STAGES }, (_, i) => i + 1);

const latency = new Trend('fanout_latency', true);
const published = new Counter('messages_published');

// Sub-metrics appear in the summary data only when a threshold names them: one always-true
// threshold per step and metric makes the per-step numbers available to handleSummary.
const perStep = {};
for (const s of STEPS) {
  perStep[`messages_published{stage:${s}}`] = ['count>=0'];
  perStep[`messages_received{stage:${s}}`] = ['count>=0'];
  perStep[`messages_missing{stage:${s}}`] = ['count>=-1000000000'];
  perStep[`fanout_latency{stage:${s}}`] = ['max>=0'];
}

export const options = {
  scenarios: {
    subscribers: { executor: 'per-vu-iterations', vus: SUBSCRIBERS, iterations: 1, exec: 'subscriber', maxDuration: `${WARMUP_S + STAGES * STAGE_S + DRAIN_S + 30}s` },
    publisher: {
      // Steps, not ramps: each rate jumps at once and holds for STAGE_S.
      executor: 'ramping-arrival-rate', startRate: rateOf(1), timeUnit: '1s', startTime: `${WARMUP_S}s`,
      preAllocatedVUs: 20, maxVUs: Math.max(50, Math.ceil(MAX_RATE / 4)), exec: 'publisher',
      stages: STEPS.flatMap((s) => [{ target: rateOf(s), duration: '0s' }, { target: rateOf(s), duration: `${STAGE_S}s` }]),
    },
  },
  thresholds: Object.assign(
    {
      fanout_latency: ['p(99)<1000'],
      messages_missing: ['count==0'],
      messages_duplicated: ['count==0'],
      subscribe_failures: ['count==0'],
      'http_req_failed{name:publish}': ['rate<0.01'],
    },
    perStep,
  ),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  return { prefix: __ENV.ROOM_PREFIX || `load:tp-${Date.now()}` };
}

export function subscriber(data) {
  // Counted under the step the message was published in, so each step counts its own messages.
  const deliveries = deliveryTracker('stage');
  const ws = subscribe(`${data.prefix}-${exec.scenario.iterationInTest % ROOMS}`, {
    onEvent(name, msg) {
      if (name !== 'load' || !msg || typeof msg.seq !== 'number') return;
      latency.add(Date.now() - msg.sent, { stage: String(msg.stage) });
      deliveries.arrived(msg.seq, msg.stage);
    },
  });
  setTimeout(() => {
    deliveries.flush();
    ws.close();
  }, (WARMUP_S + STAGES * STAGE_S + DRAIN_S) * 1000);
}

export function publisher(data) {
  const i = exec.scenario.iterationInTest;
  const stage = Math.min(STAGES, Math.floor((Date.now() - exec.scenario.startTime) / (STAGE_S * 1000)) + 1);
  const tags = { stage: String(stage) };
  if (publish(`${data.prefix}-${i % ROOMS}`, i + 1, { stage: stage }, tags)) {
    published.add(1, tags);
    missing.add(subscribersIn(i % ROOMS), tags);
  }
}

export function handleSummary(data) {
  const rows = STEPS.map((s) => {
    const pub = stat(data, `messages_published{stage:${s}}`, 'count');
    const del = stat(data, `messages_received{stage:${s}}`, 'count');
    const perS = (v) => (typeof v === 'number' ? Math.round(v / STAGE_S) : v);
    return `  step ${s}: ${rateOf(s)}/s asked, ${perS(pub)}/s published, ${perS(del)} deliveries/s, latency p50 ${stat(data, `fanout_latency{stage:${s}}`, 'med')} ms p99 ${stat(data, `fanout_latency{stage:${s}}`, 'p(99)')} ms, missing ${stat(data, `messages_missing{stage:${s}}`, 'count')}`;
  });
  return summary(
    data,
    'throughput',
    [
      ['published', 'messages_published', 'count'],
      ['deliveries', 'messages_received', 'count'],
      ['missing (published x room subscribers - received once)', 'messages_missing', 'count'],
      ['duplicates', 'messages_duplicated', 'count'],
      ['subscribe failures', 'subscribe_failures', 'count'],
      ['latency p50 (ms)', 'fanout_latency', 'med'],
      ['latency p99 (ms)', 'fanout_latency', 'p(99)'],
    ],
    [`per step (${STAGE_S} s each; deliveries of the messages published in that step):`, ...rows],
  );
}
