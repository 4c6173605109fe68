// Shared by the k6 scenarios: a Socket.IO client over k6's WebSocket API, using the same wire
// module as the Node harness (loadtest/lib/socketio.js), and the HTTP publisher.
import http from 'k6/http';
import { WebSocket } from 'k6/websockets';
import { connectFrame, eventFrame, isEventFrame, parseFrame, PONG, socketUrl } from '../lib/socketio.js';

export const BASE_URL = __ENV.BASE_URL || 'http://localhost:8080';
export const PUBLISH_KEY = __ENV.PUBLISH_KEY || '';
export const TOKEN = __ENV.TOKEN || '';

/**
 * Opens a Socket.IO connection, subscribes to `room` (with `since` when given) and calls
 * `onEvent(name, data, meta)` for every published message. Answers pings. Returns the socket.
 */
export function subscribe(room, handlers) {
  const ws = new WebSocket(socketUrl(BASE_URL));
  let acked = false;
  ws.onmessage = (e) => {
    const frame = e.data;
    if (isEventFrame(frame)) {
      const f = parseFrame(frame);
      if (f.name.indexOf('herald:') !== 0 && handlers.onEvent) handlers.onEvent(f.name, f.args[0], f.args[1]);
      return;
    }
    const f = parseFrame(frame);
    if (f.type === 'ping') ws.send(PONG);
    else if (f.type === 'open') ws.send(connectFrame(TOKEN ? { token: TOKEN } : undefined));
    else if (f.type === 'connected') ws.send(eventFrame('subscribe', [handlers.since ? { room: room, since: handlers.since } : room], 1));
    else if (f.type === 'refused' && handlers.onError) handlers.onError(f.error);
    else if (f.type === 'ack' && f.id === 1 && !acked) {
      acked = true;
      if (handlers.onSubscribed) handlers.onSubscribed(f.args[0]);
    }
  };
  ws.onerror = (e) => {
    if (handlers.onError) handlers.onError(e);
  };
  if (handlers.onClose) ws.onclose = handlers.onClose;
  return ws;
}

/** Publishes `{seq, sent}` (plus `extra`) to `room` through the HTTP API; returns the response. */
export function publish(room, seq, extra) {
  const data = Object.assign({ seq: seq, sent: Date.now() }, extra || {});
  return http.post(`${BASE_URL}/v1/publish`, JSON.stringify({ room: room, event: 'load', data: data }), {
    headers: Object.assign({ 'content-type': 'application/json' }, PUBLISH_KEY ? { authorization: `Bearer ${PUBLISH_KEY}` } : {}),
    tags: { name: 'publish' },
  });
}

/** A one-line text summary plus the full JSON, since handleSummary replaces k6's default output. */
export function summary(data, name, lines) {
  const out = [`\n${name}`];
  for (const [label, metric, stat] of lines) {
    const m = data.metrics[metric];
    out.push(`  ${label}: ${m ? m.values[stat] : 'n/a'}`);
  }
  const failed = Object.entries(data.metrics).filter(([, m]) => m.thresholds && Object.values(m.thresholds).some((t) => !t.ok));
  out.push(failed.length ? `  thresholds FAILED: ${failed.map(([k]) => k).join(', ')}` : '  all thresholds passed');
  return { stdout: out.join('\n') + '\n', [`${name}-summary.json`]: JSON.stringify(data, null, 2) };
}
