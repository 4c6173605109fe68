import type { Server } from 'socket.io';
import type { TemplatedApp, WebSocketBehavior } from 'uWebSockets.js';

/**
 * `io.attachApp(app)`, with the handlers Socket.IO registers on the app wrapped against uWS
 * habits it does not account for:
 *
 * - **Binary WebSocket messages are copied.** uWS hands a `message` handler an ArrayBuffer that is
 *   valid only until the handler returns. Engine.IO passes binary ones on as they are, and
 *   Socket.IO keeps each attachment of an event until the last one arrives, then the event's
 *   handler keeps them for as long as it runs, so a client `publish` with three Buffers reached
 *   WebSocket subscribers with all but the last emptied and long-polling subscribers (encoded
 *   later, on their next poll) with all of them emptied. Text messages Engine.IO turns into a
 *   string inside the callback: no copy.
 *
 * HTTP bodies need no copy: Engine.IO's uWS polling transport copies every chunk of a body in
 * several chunks, and decodes a body in one chunk to a string before its `onData` returns.
 *
 * The app's methods live on its prototype; the wrapper is an own property removed afterwards, so
 * herald's own routes and later registrations see uWS's methods unchanged.
 */
export function attachEngine(io: Server, app: TemplatedApp): void {
  const { ws } = app;
  const own = app as unknown as Record<'ws', unknown>;
  own.ws = function (this: TemplatedApp, pattern: Parameters<TemplatedApp['ws']>[0], behavior: WebSocketBehavior<unknown>) {
    const { message } = behavior;
    if (!message) return ws.call(this, pattern, behavior);
    return ws.call(this, pattern, {
      ...behavior,
      message: (socket, data, isBinary) => message(socket, isBinary ? data.slice(0) : data, isBinary),
    });
  };
  try {
    io.attachApp(app);
  } finally {
    delete own.ws;
  }
}
