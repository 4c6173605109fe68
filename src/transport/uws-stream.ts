import type { HttpResponse } from 'uWebSockets.js';
import { statusLine, streamHeaders, type HttpReply, type StreamSink } from './http.js';
import { ClosingSink } from './stream-sink.js';

/**
 * Writes a streaming reply's head on a uWS response and lends it to its route. Returns what the
 * transport calls when uWS reports the response aborted (the peer went away).
 *
 * uWS's 10 s request clock (`UWS_CLOCK_RESTART_MS` in uws.ts) stops once the response has
 * started: a stream that wrote its head and one line stayed open 25 s idle in a probe. The
 * route's heartbeat is for proxies and dead peers, not for uWS.
 */
export function openUwsStream(res: HttpResponse, reply: HttpReply, replicaId: string): () => void {
  res.cork(() => {
    res.writeStatus(statusLine(reply.status));
    for (const [k, v] of streamHeaders(reply, replicaId)) res.writeHeader(k, v);
  });
  const sink = new UwsStreamSink(res);
  res.onWritable(() => sink.writable());
  reply.stream!(sink);
  return () => sink.over();
}

/**
 * A uWS response as a `StreamSink`.
 *
 * Every write is corked (`corkedWrite`). uWS keeps what the socket does not take in its own
 * buffer; a write that finds that buffer still full returns false. herald then stops writing to
 * uWS and queues further chunks itself until uWS calls `onWritable`, so `queuedBytes` (herald's
 * queue) is what the route bounds. At most one more write sits in uWS's buffer: the one that
 * found it full (or the queue handed over at the last `onWritable`). The SSE route writes once
 * per stream per event-loop turn (src/sse/stream.ts), so a write here is a turn's text.
 *
 * A class (not an object literal with getters, whose every instance has a map of its own): the
 * hub reads `closed` and `queuedBytes` of every stream of a room at every delivery, and those
 * reads stay monomorphic.
 */
class UwsStreamSink extends ClosingSink implements StreamSink {
  private blocked = false;
  private queue: string[] = [];
  private queued = 0;
  private drained: (() => void)[] | undefined;

  constructor(private readonly res: HttpResponse) {
    super();
  }

  get queuedBytes(): number {
    return this.queued;
  }

  write(chunk: string): boolean {
    if (this.closed) return false;
    if (this.blocked) {
      this.queue.push(chunk);
      this.queued += Buffer.byteLength(chunk);
      return true;
    }
    this.blocked = !corkedWrite(this.res, chunk);
    return true;
  }

  whenDrained(fn: () => void): void {
    if (this.closed || !this.blocked) fn();
    else (this.drained ??= []).push(fn);
  }

  end(): void {
    if (this.closed) return;
    // What is still queued here is dropped: the stream is ending, and what it owes is in the `id:` already sent.
    const res = this.res;
    res.cork(() => res.end());
    this.over();
  }

  /** uWS's `onWritable`: hands the queue over; whether uWS took it all. */
  writable(): boolean {
    if (this.closed) return true;
    if (this.queue.length > 0) {
      const chunk = this.queue.join('');
      this.queue = [];
      this.queued = 0;
      this.blocked = !corkedWrite(this.res, chunk);
    } else this.blocked = false;
    if (!this.blocked) this.callDrained();
    return !this.blocked;
  }

  /** What is queued is dropped; whoever waited for a drain is told (and finds the sink closed). */
  protected override closing(): void {
    this.queue = [];
    this.queued = 0;
    this.callDrained();
  }

  private callDrained(): void {
    const drained = this.drained;
    this.drained = undefined;
    if (drained) for (const fn of drained) fn();
  }
}

/**
 * `res.write(text)` corked: the chunk's size line, the text and the line end go out in one `send`
 * (uncorked, each of the four is a `send` of its own). uWS corks one socket at a time: inside
 * another's cork (a request's handler, say) this write is not corked, which is why the SSE route
 * writes at the end of the event-loop turn. One callback for every write, not a closure each.
 */
function corkedWrite(res: HttpResponse, text: string): boolean {
  corkRes = res;
  corkText = text;
  res.cork(writeCorked);
  corkRes = undefined;
  corkText = '';
  return corkOk;
}
let corkRes: HttpResponse | undefined;
let corkText = '';
let corkOk = false;
function writeCorked(): void {
  corkOk = corkRes!.write(corkText);
}
