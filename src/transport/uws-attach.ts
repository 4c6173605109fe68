import type { Server } from 'socket.io';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, WebSocketBehavior } from 'uWebSockets.js';

type HttpHandler = (res: HttpResponse, req: HttpRequest) => void | Promise<void>;

/**
 * `io.attachApp(app)`, with the handlers Socket.IO registers on the app wrapped against two uWS
 * habits it does not account for:
 *
 * - **Binary WebSocket messages are copied.** uWS hands a `message` handler an ArrayBuffer that is
 *   valid only until the handler returns. Engine.IO passes binary ones on as they are, and
 *   Socket.IO keeps each attachment of an event until the last one arrives, then the event's
 *   handler keeps them for as long as it runs, so a client `publish` with three Buffers reached
 *   WebSocket subscribers with all but the last emptied and long-polling subscribers (encoded
 *   later, on their next poll) with all of them emptied. Text messages Engine.IO turns into a
 *   string inside the callback: no copy.
 * - **`Connection: close` is said** on answers after which uWS closes because the request asked
 *   it to (see `sayConnectionClose`).
 * - **A WebSocket over `maxBackpressure` is closed, not skipped.** By default uWS silently leaves
 *   such a subscriber out of topic publishes and keeps it connected: its client then misses
 *   messages with no sign of it, and receives later ones, so neither its recovery offset nor its
 *   last `meta.id` tells it what it lacks. `closeOnBackpressureLimit` makes uWS drop the send and
 *   close the socket instead, before it writes anything more: the client has a gap-free prefix and
 *   recovers the rest when it reconnects. Such closes are noted for the slow-consumer count.
 *
 * - **`drain` is reported** to whoever waits for a WebSocket's queue to go down (`whenUwsDrains`:
 *   conflation, src/realtime/conflation.ts).
 *
 * HTTP bodies need no copy: Engine.IO's uWS polling transport copies every chunk of a body in
 * several chunks, and decodes a body in one chunk to a string before its `onData` returns.
 *
 * The app's methods live on its prototype; the wrappers are own properties removed afterwards, so
 * herald's own routes and later registrations see uWS's methods unchanged.
 */
export function attachEngine(io: Server, app: TemplatedApp, engineOptions: object = {}): void {
  const { ws, any, get } = app;
  const http = (register: TemplatedApp['any']) =>
    function (this: TemplatedApp, pattern: Parameters<TemplatedApp['any']>[0], handler: HttpHandler) {
      return register.call(this, pattern, (res, req) => {
        if (uwsClosesAfter(req.getHeader('connection'))) sayConnectionClose(res);
        return handler(res, req);
      });
    };
  const own = app as unknown as Record<'ws' | 'any' | 'get', unknown>;
  own.ws = function (this: TemplatedApp, pattern: Parameters<TemplatedApp['ws']>[0], behavior: WebSocketBehavior<unknown>) {
    const { message, close, maxBackpressure, drain } = behavior;
    return ws.call(this, pattern, {
      ...behavior,
      drain: (socket) => {
        drain?.(socket);
        drained(socket);
      },
      ...(message ? { message: (socket, data, isBinary) => message(socket, isBinary ? data.slice(0) : data, isBinary) } : {}),
      ...(maxBackpressure ? { closeOnBackpressureLimit: 1 } : {}),
      ...(close && maxBackpressure
        ? {
            subscription: (socket, topic, newCount, oldCount) => {
              if (newCount < oldCount) noteUnsubscribe(socket);
              behavior.subscription?.(socket, topic, newCount, oldCount);
            },
            close: (socket, code, reason) => {
              noteBackpressureClose(socket, maxBackpressure);
              close(socket, code, reason);
            },
          }
        : {}),
    } satisfies WebSocketBehavior<unknown>);
  };
  own.any = http(any);
  own.get = http(get);
  try {
    // Merged under the Server's own options: Engine.IO's (perMessageDeflate) and uWS's (compression).
    io.attachApp(app, { ...engineOptions });
  } finally {
    delete own.ws;
    delete own.any;
    delete own.get;
  }
}

/** Per Engine.IO transport, who waits for its uWS WebSocket to drain (`whenUwsDrains`). */
const drainWaiters = new WeakMap<object, () => void>();

/**
 * Calls `then` once, the next time uWS reports that this Engine.IO transport's WebSocket wrote
 * some of its queue (uWS calls `drain` on every write that took some off, until it is empty;
 * Engine.IO registers no handler of its own). One waiter per transport: a later call replaces it.
 */
export function whenUwsDrains(transport: object, then: () => void): void {
  drainWaiters.set(transport, then);
}

function drained(socket: WebSocket<unknown>): void {
  const transport = (socket.getUserData() as { transport?: object } | undefined)?.transport;
  const then = transport && drainWaiters.get(transport);
  if (!then) return;
  drainWaiters.delete(transport);
  then();
}

/** Engine.IO transports whose uWS WebSocket closed with more than `maxBackpressure` queued, and how much. */
const backpressureCloses = new WeakMap<object, number>();

/**
 * What a WebSocket had queued when uWS last took it out of a topic. uWS takes a closing socket out
 * of all its topics right before its close handler, and there (unlike in the close handler) the
 * socket can still be asked; the close handler then finds its own socket here.
 */
let lastUnsubscribed: { socket: WebSocket<unknown>; buffered: number } | undefined;

function noteUnsubscribe(socket: WebSocket<unknown>): void {
  try {
    lastUnsubscribed = { socket, buffered: socket.getBufferedAmount() };
  } catch {
    lastUnsubscribed = undefined;
  }
}

/**
 * uWS closed this socket with its queue over the bound: with `closeOnBackpressureLimit` that is
 * uWS refusing a send past `maxBackpressure`, the slow-consumer rule
 * (src/realtime/slow-consumers.ts). uWS says nothing else about why (the code is 1006 as for a
 * client that vanished), so the queue it held decides. Noted before Engine.IO's handler runs.
 * A socket in no topic gets only direct writes, which herald's own guard closes and counts.
 */
function noteBackpressureClose(socket: WebSocket<unknown>, maxBackpressure: number): void {
  const seen = lastUnsubscribed?.socket === socket ? lastUnsubscribed.buffered : 0;
  lastUnsubscribed = undefined;
  const transport = (socket.getUserData() as { transport?: object } | undefined)?.transport;
  if (seen > maxBackpressure && transport) backpressureCloses.set(transport, seen);
}

/** Bytes queued when uWS closed this Engine.IO transport's WebSocket over `maxBackpressure`; undefined otherwise. */
export function bufferedAtBackpressureClose(transport: object): number | undefined {
  return backpressureCloses.get(transport);
}

/**
 * Whether uWS will close the connection after answering a request with this `Connection` header:
 * when the whole value is `close`, in any case (checked against this uWS build). A `close` in a
 * list (`keep-alive, close`) it ignores and keeps the connection open, so that answer needs no header.
 */
export function uwsClosesAfter(connection: string | undefined): boolean {
  return connection !== undefined && connection.trim().toLowerCase() === 'close';
}

const saying = new WeakSet<HttpResponse>();

/**
 * Makes the answer on `res` carry `Connection: close`. uWS closes the connection after answering a
 * request that asked to close, as it should, but does not say so in the answer: it writes the
 * header only when it closes on its own initiative (`end(body, true)`, which herald uses after a
 * 408 or an oversized body). A client that pools connections and decides reuse from the answer,
 * as Node's http.Agent with keepAlive does (node-fetch 3 asks to close on every request), then
 * sends its next request into the closed socket: ECONNRESET on every second request.
 *
 * The header goes right after the status line, which uWS writes on the first of these calls
 * (implicitly "200 OK" unless it is `writeStatus`); only responses that need it pay for the wrappers.
 */
export function sayConnectionClose(res: HttpResponse): void {
  // Once per response: a handler that yields (`req.setYield`) passes the same one to the next route.
  if (saying.has(res)) return;
  saying.add(res);
  const target = res as unknown as Record<string, (...args: unknown[]) => unknown>;
  const writeHeader = target.writeHeader!;
  let said = false;
  const say = (self: unknown) => {
    if (said) return;
    said = true;
    writeHeader.call(self, 'connection', 'close');
  };
  const writeStatus = target.writeStatus!;
  target.writeStatus = function (this: unknown, ...args: unknown[]) {
    writeStatus.apply(this, args);
    say(this);
    return this;
  };
  for (const name of ['writeHeader', 'write', 'end', 'tryEnd', 'endWithoutBody']) {
    const original = target[name]!;
    target[name] = function (this: unknown, ...args: unknown[]) {
      say(this);
      return original.apply(this, args);
    };
  }
}
