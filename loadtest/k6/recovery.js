// recovery: clients of a history room (HISTORY_ROOMS must match ROOM) drop every DROP_EVERY_S
// seconds and come back; with a steady publisher, counts gaps and duplicates. Two modes:
// - default (`since`): each reconnect subscribes again with `{room, since}`, the last `meta.id`
//   it received (herald's explicit contract);
// - BUILTIN=1: Socket.IO's connection state recovery (herald's CONNECTION_RECOVERY_SECONDS). Each
//   client subscribes once, keeps the pid of its CONNECT reply and the offset of the last event
//   it received, and reconnects (after RECONNECT_DELAY_MS, 100-300 ms, like socket.io-client's
//   reconnection delay) with `{pid, offset}` in its CONNECT auth and no subscribe: the same pid
//   back counts in reconnects_recovered, another in reconnects_unrecovered (it stays out of the
//   room, so its messages from then on count as missing too). It drops only once it holds an
//   offset (Socket.IO restores no session without one; herald's `herald:hello` carries the first).
//   k6 run -e BASE_URL=... -e PUBLISH_KEY=... -e ROOM=scores:recovery -e CLIENTS=100 -e RATE=20 loadtest/k6/recovery.js
//   k6 run -e BUILTIN=1 -e BASE_URL=... -e PUBLISH_KEY=... -e ROOM=scores:recovery loadtest/k6/recovery.js
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
const BUILTIN = __ENV.BUILTIN === '1';
/** BUILTIN=1: milliseconds between a drop and the reconnect, randomised ±50 %. */
const RECONNECT_DELAY_MS = Number(__ENV.RECONNECT_DELAY_MS || 200);

const recovered = new Counter('resubscribes_recovered');
const unrecovered = new Counter('resubscribes_unrecovered');
const reconnectsRecovered = new Counter('reconnects_recovered');
const reconnectsUnrecovered = new Counter('reconnects_unrecovered');
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
    // Without resubscribes (reconnects) the run says nothing about recovery.
    ...(BUILTIN
      ? { reconnects_unrecovered: ['count==0'], reconnects_recovered: ['count>0'] }
      : { resubscribes_unrecovered: ['count==0'], resubscribes_recovered: ['count>0'] }),
    'http_req_failed{name:publish}': ['rate<0.01'],
  },
};

// A fresh room per run by default (a name that matches compose's HISTORY_ROOMS, scores:*).
export function setup() {
  return { room: __ENV.ROOM || `scores:recovery-${Date.now()}` };
}

export function client(data) {
  if (BUILTIN) return builtinClient(data);
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

// BUILTIN=1: one subscribe, then reconnects that Socket.IO's connection state recovery restores.
function builtinClient(data) {
  const deliveries = deliveryTracker();
  const stopAt = Date.now() + (WARMUP_S + DURATION_S + DRAIN_S) * 1000;
  /** The private session id of the last CONNECT reply, and the offset of the last event received. */
  let pid;
  let offset;
  const connect = (first) => {
    const asked = first ? undefined : { pid: pid, offset: offset };
    // True once this connection's CONNECT (and, the first time, the subscribe) was answered or failed.
    let settled = false;
    const ws = subscribe(data.room, {
      auth: asked,
      onConnected(reply) {
        if (asked) (reply.pid === asked.pid ? reconnectsRecovered : reconnectsUnrecovered).add(1);
        pid = reply.pid;
        // Subscribes once; a restored session has its room back, and one that was not restored stays out.
        return first;
      },
      onSubscribed() {
        settled = true;
      },
      onFailed() {
        settled = true;
      },
      onOffset(o) {
        offset = o;
      },
      onEvent(name, msg) {
        if (name !== 'load' || !msg || typeof msg.seq !== 'number') return;
        deliveries.arrived(msg.seq);
      },
    });
    const dropAt = Date.now() + DROP_EVERY_S * (0.5 + Math.random()) * 1000;
    const drop = () => {
      const left = stopAt - Date.now();
      // Not in the last second: a connect closed before its answer would count as a failure.
      if (left <= 1000) {
        ws.close();
        deliveries.flush();
      } else if (!settled || pid === undefined || offset === undefined) {
        // Nothing to recover with yet (no CONNECT reply, or no event received): wait for one.
        setTimeout(drop, Math.min(250, left - 1000));
      } else {
        ws.close();
        setTimeout(() => connect(false), RECONNECT_DELAY_MS * (0.5 + Math.random()));
      }
    };
    setTimeout(drop, Math.min(Math.max(0, dropAt - Date.now()), Math.max(0, stopAt - Date.now())));
  };
  connect(true);
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
    ...(BUILTIN
      ? [
          ['reconnects recovered', 'reconnects_recovered', 'count'],
          ['reconnects not recovered', 'reconnects_unrecovered', 'count'],
        ]
      : [
          ['resubscribes recovered', 'resubscribes_recovered', 'count'],
          ['resubscribes not recovered', 'resubscribes_unrecovered', 'count'],
        ]),
  ], BUILTIN ? ['mode: BUILTIN=1 (Socket.IO connection state recovery, no resubscribe)'] : []);
}
