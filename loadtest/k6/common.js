// Shared by the k6 scenarios: a Socket.IO client over k6's WebSocket API, using the same wire
// module as the Node harness (loadtest/lib/socketio.js), the HTTP publisher, and the delivery
// accounting that makes a run with lost messages or refused subscribes fail.
import http from 'k6/http';
import { Counter } from 'k6/metrics';
import { clearTimeout, setTimeout } from 'k6/timers';
import { WebSocket } from 'k6/websockets';
import { connectFrame, eventFrame, eventOffset, isEventFrame, parseFrame, PONG, socketUrl } from '../lib/socketio.js';

export const BASE_URL = __ENV.BASE_URL || 'http://localhost:8080';
/** Where publishes go; defaults to BASE_URL (set it to publish straight to one replica, say). */
export const PUBLISH_URL = __ENV.PUBLISH_URL || BASE_URL;
export const PUBLISH_KEY = __ENV.PUBLISH_KEY || '';
export const TOKEN = __ENV.TOKEN || '';
/** A subscribe that has no ack after this many seconds counts as failed. */
const SUBSCRIBE_TIMEOUT_S = Number(__ENV.SUBSCRIBE_TIMEOUT_S || 10);

/** k6's summary stops at p(95) unless told; every scenario reports p99. */
export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'];

/**
 * Subscribes that did not end in `{ok: true}`: connect refused (`44`), an error ack (`forbidden`,
 * `rate_limited`, ...), no ack in time, or the socket closed or failed first. Every scenario has
 * the threshold `count==0`.
 */
export const subscribeFailures = new Counter('subscribe_failures');

/**
 * The delivery ledger, summed over the whole run: every publish the API accepted adds the number
 * of subscribers of its room, every first arrival of a message at a subscriber takes one away.
 * What is left at the end is accepted × subscribers − delivered: messages lost, or owed to
 * subscribers that never subscribed. Thresholds: `count==0` for both.
 */
export const missing = new Counter('messages_missing');
export const duplicates = new Counter('messages_duplicated');
export const received = new Counter('messages_received');

/**
 * One subscriber's arrivals: `arrived(seq, group)` for every message, `flush()` once before the
 * subscriber closes. Counts are kept here and added to the metrics at `flush()`, per `group` (a
 * tag value for `tag`), so a message costs one metric sample (its latency) instead of four:
 * receiving is what saturates k6 first (loadtest/README.md).
 */
export function deliveryTracker(tag) {
  const seen = {};
  const counts = {};
  return {
    arrived(seq, group) {
      const key = group === undefined ? '' : String(group);
      const c = counts[key] || (counts[key] = { received: 0, unique: 0, repeated: 0 });
      c.received++;
      if (seen[seq]) c.repeated++;
      else {
        seen[seq] = true;
        c.unique++;
      }
    },
    flush() {
      for (const key of Object.keys(counts)) {
        const c = counts[key];
        const tags = tag ? { [tag]: key } : undefined;
        received.add(c.received, tags);
        missing.add(-c.unique, tags);
        duplicates.add(c.repeated, tags);
        delete counts[key];
      }
    },
  };
}

let warned = false;
function failed(room, reason, handlers) {
  subscribeFailures.add(1);
  // One line per VU: enough to see why, without one per retry.
  if (!warned) {
    warned = true;
    console.warn(`subscribe to ${room} failed: ${reason}`);
  }
  if (handlers.onFailed) handlers.onFailed(reason);
}

/**
 * Opens a Socket.IO connection and subscribes to `room` (with `handlers.since` when given).
 * Exactly one of `onSubscribed(ack)` or `onFailed(reason)` is called per call (and counted in
 * `subscribe_failures` when it failed); after that, `onEvent(name, data, meta)` for every
 * published message (`frame`, its fourth argument, is the text frame it came in) and `onClose()`
 * when the socket closes. Answers pings. Returns the socket. `handlers.params` goes to k6's
 * WebSocket (e.g. `{compression: 'deflate'}`); `handlers.delta` (`"fossil"`) asks for deltas
 * (`subscribe {room, delta}`, docs/reference/deltas.md), which `onEvent` gets as they come
 * (`data` the delta, `meta.base` its base: loadtest/lib/fossil.js applies them).
 *
 * For connection state recovery (recovery.js, BUILTIN=1): `handlers.auth` adds fields to the
 * CONNECT auth (`{pid, offset}` on a reconnect); `onOffset(offset)` gets the offset of every event
 * that carries one (herald's own `herald:*` events included, as socket.io-client counts them);
 * `onConnected({sid, pid})` gets the CONNECT reply and, when it returns false, no subscribe is sent
 * (a restored session has its rooms back) and the call settles at once with `onSubscribed(null)`.
 */
export function subscribe(room, handlers) {
  const ws = new WebSocket(socketUrl(BASE_URL), null, handlers.params);
  let settled = false;
  const settle = (ack, reason) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    if (reason === undefined) {
      if (handlers.onSubscribed) handlers.onSubscribed(ack);
    } else failed(room, reason, handlers);
  };
  const timer = setTimeout(() => settle(undefined, `no subscribe ack within ${SUBSCRIBE_TIMEOUT_S} s`), SUBSCRIBE_TIMEOUT_S * 1000);
  ws.onmessage = (e) => {
    const frame = e.data;
    if (isEventFrame(frame)) {
      const f = parseFrame(frame);
      if (handlers.onOffset) {
        const offset = eventOffset(f.args);
        if (offset !== undefined) handlers.onOffset(offset);
      }
      if (f.name.indexOf('herald:') !== 0 && handlers.onEvent) handlers.onEvent(f.name, f.args[0], f.args[1], frame);
      return;
    }
    const f = parseFrame(frame);
    if (f.type === 'ping') ws.send(PONG);
    else if (f.type === 'open') {
      const auth = Object.assign(TOKEN ? { token: TOKEN } : {}, handlers.auth || {});
      ws.send(connectFrame(Object.keys(auth).length ? auth : undefined));
    } else if (f.type === 'connected') {
      if (handlers.onConnected && handlers.onConnected({ sid: f.sid, pid: f.pid }) === false) settle(null);
      else ws.send(eventFrame('subscribe', [subscribeArg(room, handlers)], 1));
    } else if (f.type === 'refused') settle(undefined, `connect refused: ${JSON.stringify(f.error)}`);
    else if (f.type === 'ack' && f.id === 1) {
      const ack = f.args[0];
      if (ack && ack.ok === true) settle(ack);
      else settle(undefined, `subscribe refused: ${JSON.stringify(ack && ack.error ? ack.error : ack)}`);
    }
  };
  ws.onerror = (e) => {
    const error = String(e && e.error ? e.error : e);
    // k6 does not say why an upgrade was refused; herald refuses one for its per-IP connect limit
    // (all of k6's connections come from one address) and for an origin it does not allow.
    const hint = /bad handshake/.test(error) ? ' (upgrade refused: CONNECT_RATE_PER_IP / CONNECT_BURST_PER_IP, see loadtest/README.md)' : '';
    settle(undefined, `WebSocket error: ${error}${hint}`);
  };
  ws.onclose = () => {
    settle(undefined, 'closed before the subscribe ack');
    if (handlers.onClose) handlers.onClose();
  };
  return ws;
}

/** The subscribe event's argument: the room's name, or `{room, since?, delta?}`. */
function subscribeArg(room, handlers) {
  if (!handlers.since && !handlers.delta) return room;
  const arg = { room: room };
  if (handlers.since) arg.since = handlers.since;
  if (handlers.delta) arg.delta = handlers.delta;
  return arg;
}

/** Publishes `{seq, sent}` (plus `extra`) to `room` through the HTTP API; true when accepted. */
export function publish(room, seq, extra, tags) {
  const data = Object.assign({ seq: seq, sent: Date.now() }, extra || {});
  const res = http.post(`${PUBLISH_URL}/v1/publish`, JSON.stringify({ room: room, event: 'load', data: data }), {
    headers: Object.assign({ 'content-type': 'application/json' }, PUBLISH_KEY ? { authorization: `Bearer ${PUBLISH_KEY}` } : {}),
    tags: Object.assign({ name: 'publish' }, tags || {}),
  });
  return res.status === 200;
}

const round = (v) => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 100) / 100 : v);

/** A value of a metric from the summary data, `n/a` when the metric has no samples. */
export function stat(data, metric, name) {
  const m = data.metrics[metric];
  return m && m.values[name] !== undefined ? round(m.values[name]) : 'n/a';
}

/** A short text summary plus the full JSON, since handleSummary replaces k6's default output. */
export function summary(data, name, lines, extra) {
  const out = [`\n${name}`];
  for (const [label, metric, s] of lines) out.push(`  ${label}: ${stat(data, metric, s)}`);
  for (const l of extra || []) out.push(`  ${l}`);
  const failedThresholds = [];
  for (const [metric, m] of Object.entries(data.metrics)) {
    for (const [expr, t] of Object.entries(m.thresholds || {})) if (!t.ok) failedThresholds.push(`${metric} ${expr}`);
  }
  out.push(failedThresholds.length ? `  thresholds FAILED: ${failedThresholds.join(', ')}` : '  all thresholds passed');
  return { stdout: out.join('\n') + '\n', [`${name}-summary.json`]: JSON.stringify(data, null, 2) };
}
