// recovery: clients of a history room (HISTORY_ROOMS must match ROOM) drop every DROP_EVERY_S
// seconds and come back with `since`; with a steady publisher, counts gaps and duplicates.
//   k6 run -e BASE_URL=... -e PUBLISH_KEY=... -e ROOM=scores:recovery -e CLIENTS=100 -e RATE=20 loadtest/k6/recovery.js
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { setTimeout } from 'k6/timers';
import { deliveryTracker, missing, publish, subscribe, summary } from './common.js';

const CLIENTS = Number(__ENV.CLIENTS || 100);
const RATE = Number(__ENV.RATE || 20);
const DURATION_S = Number(__ENV.DURATION_S || 30);
const DROP_EVERY_S = Number(__ENV.DROP_EVERY_S || 7);
const WARMUP_S = Number(__ENV.WARMUP_S || 5);
/** Seconds clients stay after the last publish, for late messages. */
const DRAIN_S = Number(__ENV.DRAIN_S || 10);

const recovered = new Counter('resubscribes_recovered');
const unrecovered = new Counter('resubscribes_unrecovered');
const published = new Counter('messages_published');

export const options = {
  scenarios: {
    clients: { executor: 'per-vu-iterations', vus: CLIENTS, iterations: 1, exec: 'client', maxDuration: `${WARMUP_S + DURATION_S + DRAIN_S + 30}s` },
    publisher: { executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: `${DURATION_S}s`, startTime: `${WARMUP_S}s`, preAllocatedVUs: 5, maxVUs: 50, exec: 'publisher' },
  },
  thresholds: {
    messages_missing: ['count==0'],
    messages_duplicated: ['count==0'],
    subscribe_failures: ['count==0'],
    resubscribes_unrecovered: ['count==0'],
    // Without resubscribes the run says nothing about recovery.
    resubscribes_recovered: ['count>0'],
    'http_req_failed{name:publish}': ['rate<0.01'],
  },
};

// A fresh room per run by default (a name that matches compose's HISTORY_ROOMS, scores:*).
export function setup() {
  return { room: __ENV.ROOM || `scores:recovery-${Date.now()}` };
}

export function client(data) {
  const deliveries = deliveryTracker();
  let position;
  const stopAt = Date.now() + (WARMUP_S + DURATION_S + DRAIN_S) * 1000;
  const connect = (since) => {
    const ws = subscribe(data.room, {
      since: since,
      onSubscribed(ack) {
        if (since !== undefined) (ack.recovered ? recovered : unrecovered).add(1);
        if (ack.offset && position === undefined) position = ack.offset;
      },
      onEvent(name, msg, meta) {
        if (name !== 'load' || !msg || typeof msg.seq !== 'number') return;
        if (meta && meta.id) position = meta.id;
        deliveries.arrived(msg.seq);
      },
    });
    const dropIn = DROP_EVERY_S * (0.5 + Math.random()) * 1000;
    setTimeout(() => {
      ws.close();
      // Not in the last second: a subscribe closed before its ack would count as a failure.
      if (stopAt - Date.now() > 1000) connect(position);
      else deliveries.flush();
    }, Math.min(dropIn, Math.max(0, stopAt - Date.now())));
  };
  connect(undefined);
}

export function publisher(data) {
  if (publish(data.room, exec.scenario.iterationInTest + 1)) {
    published.add(1);
    missing.add(CLIENTS);
  }
}

export function handleSummary(data) {
  return summary(data, 'recovery', [
    ['published', 'messages_published', 'count'],
    ['received', 'messages_received', 'count'],
    ['missing (published x clients - received once)', 'messages_missing', 'count'],
    ['duplicates', 'messages_duplicated', 'count'],
    ['subscribe failures', 'subscribe_failures', 'count'],
    ['resubscribes recovered', 'resubscribes_recovered', 'count'],
    ['resubscribes not recovered', 'resubscribes_unrecovered', 'count'],
  ]);
}
