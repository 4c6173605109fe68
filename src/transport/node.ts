import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Server } from 'socket.io';
import { HeraldError, ListenError } from '../errors.js';
import { installAdmission } from './admission.js';
import { ClosingSink } from './stream-sink.js';
import { BodyCollector, errorReply, methodHasBody, renderReply, statusLine, streamHeaders, type HttpReply, type StreamSink } from './http.js';
import { COMPRESSION_THRESHOLD_BYTES, type RunningTransport, type TransportOptions } from './types.js';

/** Serves Socket.IO (default `ws` engine) and herald's HTTP routes on Node's http server. */
export function startNodeTransport(opts: TransportOptions): Promise<RunningTransport> {
  // Slow or stalled requests (headers or body) get 408 and are closed; Node checks every
  // connectionsCheckingInterval, so that follows the timeout.
  const server = createServer(
    {
      requestTimeout: opts.http.requestTimeoutMs,
      headersTimeout: opts.http.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, opts.http.requestTimeoutMs / 2),
    },
    (req, res) => handle(opts, req, res),
  );
  // Attached after our listener: Engine.IO takes /socket.io/ requests and hands the rest to it.
  opts.io.attach(server, opts.compression ? { perMessageDeflate: opts.compression === 'context' ? PER_MESSAGE_DEFLATE_CONTEXT : PER_MESSAGE_DEFLATE } : {});
  answerRefusedUpgrades(opts.io);
  // No descriptor backstop here: libuv meets EMFILE by accepting and closing with a reserved descriptor, without spinning.
  const admission = opts.admission;
  if (admission) installAdmission(opts.io, admission, opts.http.replicaId);
  return new Promise((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => reject(new ListenError('PORT', opts.host, opts.port, err));
    server.once('error', failed);
    server.listen(opts.port, opts.host, () => {
      server.off('error', failed);
      const address = server.address();
      resolve({
        kind: 'node',
        port: typeof address === 'object' && address ? address.port : opts.port,
        stopListening() {
          // Stops accepting; io.close() later closes the upgraded connections.
          if (server.listening) server.close();
        },
      });
    });
  });
}

/**
 * `WS_COMPRESSION=on` on the node transport: `ws`'s permessage-deflate, as close to uWS's shared
 * compressor as `ws` comes. No context takeover in either direction, so no window is carried from
 * one message to the next; `ws` still keeps a zlib stream per connection that has sent a
 * compressed message. It is sized down here since messages are small (a 1 KiB window, memLevel
 * 4): about 95 KiB of RSS per stream instead of 225 KiB with zlib's defaults, measured for 1,000
 * streams (most of it does not shrink with these options); bench/compression.ts
 * shows the same per connection. Deflating runs on libuv's thread pool, at most
 * `concurrencyLimit` (10) at once per process.
 * `ws`'s `maxPayload` (CLIENT_MAX_BYTES, from `maxHttpBufferSize`) counts inflated bytes: past it
 * the connection is closed with 1009, as for an uncompressed frame over it.
 */
const PER_MESSAGE_DEFLATE = {
  threshold: COMPRESSION_THRESHOLD_BYTES,
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
  serverMaxWindowBits: 10,
  zlibDeflateOptions: { memLevel: 4 },
};

/**
 * `WS_COMPRESSION=context` on the node transport: the server keeps its deflate window from one
 * message to the next (context takeover), 4 KiB (`serverMaxWindowBits` 12, as uWS's
 * DEDICATED_COMPRESSOR_4KB), so what repeats between a connection's messages is sent as
 * back-references. The deflate stream then lives as long as the connection (without context
 * takeover `ws` resets it after each message but keeps it too); client messages are still
 * inflated without context (`clientNoContextTakeover`), as on uWS.
 */
const PER_MESSAGE_DEFLATE_CONTEXT = {
  threshold: COMPRESSION_THRESHOLD_BYTES,
  serverNoContextTakeover: false,
  clientNoContextTakeover: true,
  serverMaxWindowBits: 12,
  zlibDeflateOptions: { memLevel: 4 },
};

/** Engine.IO's error code for a handshake `allowRequest` refused (engine.io's `Server.errors.FORBIDDEN`). */
const ENGINE_FORBIDDEN = 4;

/**
 * Refused WebSocket handshakes get the answer long-polling and uWS give: 403 for what
 * `allowRequest` refused (draining, origin, rate_limited), 400 otherwise, with Engine.IO's
 * `{"code","message"}` body. Engine.IO's `ws` upgrade path would answer 400 with the bare message
 * as text/html. It emits `connection_error` right before it writes that answer, and writes only
 * to a socket still writable, so herald answers here and ends the socket; Engine.IO then just
 * destroys it. Handshakes that fail after `ws` has taken the socket over (`req.websocket`) are
 * left alone.
 */
function answerRefusedUpgrades(io: Server): void {
  io.engine.on('connection_error', (err: { req: IncomingMessage & { upgrade?: boolean; websocket?: unknown }; code: number; message: string; context?: { message?: string } }) => {
    const { req } = err;
    if (!req.upgrade || req.websocket || !req.socket?.writable) return;
    const status = err.code === ENGINE_FORBIDDEN ? 403 : 400;
    const body = JSON.stringify({ code: err.code, message: err.context?.message ?? err.message });
    req.socket.end(
      `HTTP/1.1 ${statusLine(status)}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  });
}

function handle(opts: TransportOptions, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://herald');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  const request = {
    method: (req.method ?? 'GET').toUpperCase(),
    path: url.pathname,
    query: url.searchParams,
    headers,
    remoteAddress: req.socket.remoteAddress ?? '',
  };
  let done = false;
  const send = (reply: HttpReply, closeConnection = false) => {
    if (done || res.destroyed) return;
    done = true;
    if (reply.stream) {
      openStream(res, reply, opts.http.replicaId);
      return;
    }
    const { body, headers } = renderReply(reply, opts.http.replicaId);
    for (const [k, v] of headers) res.setHeader(k, v);
    if (closeConnection || opts.http.closingConnections()) res.setHeader('connection', 'close');
    // Without a length, writeHead commits to chunked encoding for a body that is already whole.
    res.setHeader('content-length', Buffer.byteLength(body));
    res.writeHead(reply.status);
    res.end(body);
  };
  const dispatch = (body: Buffer) => {
    opts.http.handle({ ...request, body }).then(send, () => send(errorReply(new HeraldError('internal'))));
  };
  if (!methodHasBody(request.method)) {
    req.resume();
    dispatch(Buffer.alloc(0));
    return;
  }
  const collector = new BodyCollector(opts.http.maxBodyBytes);
  // Always closed after, as nginx does after a 413: each refused body costs its sender a connection.
  const tooLarge = () => {
    send(errorReply(new HeraldError('payload_too_large')), true);
    // The socket goes once the 413 is out: past the discard cap, what is still coming is not read.
    res.once('finish', () => req.socket.destroy());
  };
  if (collector.declaredPastCap(headers)) {
    tooLarge();
    return;
  }
  req.on('data', (chunk: Buffer) => {
    if (done) return;
    collector.add(chunk.length, () => chunk);
    if (collector.pastCap) tooLarge();
  });
  req.on('end', () => {
    if (done) return;
    if (collector.overLimit) tooLarge();
    else dispatch(collector.body());
  });
  req.on('error', () => {
    done = true;
  });
}

/** Writes a streaming reply's head and lends the response to its route (Server-Sent Events). */
function openStream(res: ServerResponse, reply: HttpReply, replicaId: string): void {
  for (const [k, v] of streamHeaders(reply, replicaId)) res.setHeader(k, v);
  res.writeHead(reply.status);
  res.flushHeaders();
  reply.stream!(new NodeStreamSink(res));
}

/**
 * A Node response as a `StreamSink`: Node queues what the socket does not take, and says how much.
 * A class (not an object literal with getters, whose every instance has a map of its own): the
 * SSE hub reads `closed` of every stream of a room at every delivery, and that read stays
 * monomorphic.
 */
class NodeStreamSink extends ClosingSink implements StreamSink {
  constructor(private readonly res: ServerResponse) {
    super();
    res.once('close', () => this.over());
  }

  get queuedBytes(): number {
    return this.res.writableLength;
  }

  write(chunk: string): boolean {
    if (this.closed || this.res.destroyed) return false;
    this.res.write(chunk);
    return true;
  }

  whenDrained(fn: () => void): void {
    const res = this.res;
    if (this.closed || !res.writableNeedDrain) return fn();
    const once = () => {
      res.off('drain', once);
      res.off('close', once);
      fn();
    };
    res.on('drain', once);
    res.on('close', once);
  }

  end(): void {
    if (this.closed) return;
    this.res.end();
    this.over();
  }

}
