import type { HttpResponse } from 'uWebSockets.js';
import { statusLine, streamHeaders, type HttpReply, type StreamSink } from './http.js';

/**
 * Writes a streaming reply's head on a uWS response and lends it to its route. Returns what the
 * transport calls when uWS reports the response aborted (the peer went away).
 *
 * uWS keeps what the socket does not take in its own buffer and says so (`write` returns false);
 * herald then stops writing to it and queues further chunks itself until uWS calls `onWritable`,
 * so `queuedBytes` (herald's queue) is what the route bounds. At most one more batch sits in
 * uWS's buffer: the queue handed over at the last `onWritable`.
 *
 * uWS's 10 s request clock (`UWS_CLOCK_RESTART_MS` in uws.ts) stops once the response has
 * started: a stream that wrote its head and one line stayed open 25 s idle in a probe. The
 * route's heartbeat is for proxies and dead peers, not for uWS.
 */
export function openUwsStream(res: HttpResponse, reply: HttpReply, replicaId: string): () => void {
  let closed = false;
  let blocked = false;
  let queue: string[] = [];
  let queued = 0;
  const closers: (() => void)[] = [];
  const drained: (() => void)[] = [];
  const over = () => {
    if (closed) return;
    closed = true;
    queue = [];
    queued = 0;
    for (const fn of drained.splice(0)) fn();
    for (const fn of closers.splice(0)) fn();
  };
  res.cork(() => {
    res.writeStatus(statusLine(reply.status));
    for (const [k, v] of streamHeaders(reply, replicaId)) res.writeHeader(k, v);
  });
  res.onWritable(() => {
    if (closed) return true;
    if (queue.length > 0) {
      const chunk = queue.join('');
      queue = [];
      queued = 0;
      blocked = !res.write(chunk);
    } else blocked = false;
    if (!blocked) for (const fn of drained.splice(0)) fn();
    return !blocked;
  });
  const sink: StreamSink = {
    write(chunk) {
      if (closed) return false;
      if (blocked) {
        queue.push(chunk);
        queued += Buffer.byteLength(chunk);
        return true;
      }
      res.cork(() => {
        blocked = !res.write(chunk);
      });
      return true;
    },
    get queuedBytes() {
      return queued;
    },
    whenDrained(fn) {
      if (closed || !blocked) fn();
      else drained.push(fn);
    },
    end() {
      if (closed) return;
      // What is still queued here is dropped: the stream is ending, and what it owes is in the `id:` already sent.
      res.cork(() => res.end());
      over();
    },
    onClose(fn) {
      if (closed) fn();
      else closers.push(fn);
    },
    get closed() {
      return closed;
    },
  };
  reply.stream!(sink);
  return over;
}
