// recovery: clients of a history room (HISTORY_ROOMS must match ROOM) drop every DROP_EVERY_S
// seconds and come back with `since`; with a steady publisher, counts gaps and duplicates.
//   k6 run -e BASE_URL=... -e PUBLISH_KEY=... -e ROOM=scores:recovery -e CLIENTS=200 -e RATE=50 loadtest/k6/recovery.js
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { setTimeout } from 'k6/timers';
import { publish, subscribe, summary } from './common.js';

const CLIENTS = Number(__ENV.CLIENTS || 100);
const RATE = Number(__ENV.RATE || 20);
const DURATION_S = Number(__ENV.DURATION_S || 30);
const DROP_EVERY_S = Number(__ENV.DROP_EVERY_S || 7);
const ROOM = __ENV.ROOM || 'scores:recovery';

const received = new Counter('messages_received');
const duplicates = new Counter('messages_duplicated');
const gaps = new Counter('messages_missing');
const recovered = new Counter('resubscribes_recovered');
const unrecovered = new Counter('resubscribes_unrecovered');
const published = new Counter('messages_published');

export const options = {
  scenarios: {
    clients: { executor: 'per-vu-iterations', vus: CLIENTS, iterations: 1, exec: 'client', maxDuration: `${DURATION_S + 60}s` },
    publisher: { executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: `${DURATION_S}s`, startTime: '5s', preAllocatedVUs: 5, maxVUs: 50, exec: 'publisher' },
  },
  thresholds: { messages_duplicated: ['count==0'], messages_missing: ['count==0'], resubscribes_unrecovered: ['count==0'] },
};

export function client() {
  const seen = {};
  let position;
  let maxSeq = 0;
  const stopAt = Date.now() + (DURATION_S + 15) * 1000;
  const connect = (since) => {
    const ws = subscribe(ROOM, {
      since: since,
      onSubscribed(ack) {
        if (since !== undefined) (ack && ack.recovered ? recovered : unrecovered).add(1);
        if (ack && ack.offset && position === undefined) position = ack.offset;
      },
      onEvent(name, data, meta) {
        if (!data || typeof data.seq !== 'number') return;
        position = meta.id;
        received.add(1);
        if (seen[data.seq]) duplicates.add(1);
        seen[data.seq] = true;
        if (data.seq > maxSeq) maxSeq = data.seq;
      },
    });
    const dropIn = (DROP_EVERY_S * (0.5 + Math.random())) * 1000;
    setTimeout(() => {
      ws.close();
      if (Date.now() < stopAt) connect(position);
      else {
        // Every sequence number up to the highest seen must have arrived exactly once.
        let missing = 0;
        for (let s = 1; s <= maxSeq; s++) if (!seen[s]) missing++;
        gaps.add(missing);
      }
    }, Math.min(dropIn, Math.max(0, stopAt - Date.now())));
  };
  connect(undefined);
}

export function publisher() {
  if (publish(ROOM, exec.scenario.iterationInTest + 1).status === 200) published.add(1);
}

export function handleSummary(data) {
  return summary(data, 'recovery', [
    ['published', 'messages_published', 'count'],
    ['received', 'messages_received', 'count'],
    ['missing', 'messages_missing', 'count'],
    ['duplicates', 'messages_duplicated', 'count'],
    ['resubscribes recovered', 'resubscribes_recovered', 'count'],
    ['resubscribes not recovered', 'resubscribes_unrecovered', 'count'],
  ]);
}
