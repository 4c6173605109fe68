import type { TemplatedApp } from 'uWebSockets.js';
import { HeraldError } from '../errors.js';
import { BodyCollector, errorReply, methodHasBody, renderReply, statusLine, type HttpReply } from './http.js';
import { openUwsStream } from './uws-stream.js';
import { COMPRESSION_THRESHOLD_BYTES, type RunningTransport, type TransportOptions } from './types.js';
import { AcceptGuard } from './accept-guard.js';
import { installAdmission } from './admission.js';
import { attachEngine, sayConnectionClose, uwsClosesAfter } from './uws-attach.js';
import { listenUws } from './uws-listen.js';
import { UwsDelivery } from './uws-delivery.js';

/** The native uWebSockets.js module, as loaded by `loadUws`. */
export type UwsModule = typeof import('uWebSockets.js');

/**
 * uWS gives every request its own fixed 10 s (not configurable in this build; its timer has 4 s
 * resolution, so 8-12 s) for headers and body together, and then closes the connection without an
 * answer. For the body, herald restarts that clock this often while the body is still coming
 * (`pause`+`resume` does), so HTTP_REQUEST_TIMEOUT_SECONDS decides and the client gets its 408.
 * Headers cannot be helped: herald's handler runs only once they are all in.
 */
const UWS_CLOCK_RESTART_MS = 3000;

/**
 * `WS_COMPRESSION=on` on uWS: permessage-deflate for clients that offer it, with uWS's shared
 * compressor and decompressor, one zlib stream each for the whole process and none per
 * connection. uWS negotiates no context takeover then, so each message is deflated on its
 * own: a room publish once per subscriber that negotiated it (uWS has no compress-once publish).
 * `WS_COMPRESSION=context`: a dedicated compressor per connection (`DEDICATED_COMPRESSOR_4KB`),
 * its window kept from one message to the next, so what repeats between a connection's messages
 * (room, meta keys, ids, unchanged fields) is sent as back-references. Still one deflate per
 * subscriber per publish. Measured with this uWS build: every dedicated size (3 KB to 32 KB)
 * negotiates `server_max_window_bits=9` or compresses as if it did (same bytes), a 512-byte
 * window whose back-references reach about 250 bytes: delta frames (~190 bytes) gain, whole
 * 550-byte frames do not; and each connection costs about 73 KiB more RSS than with the shared
 * compressor, whatever the size named (bench/compression.ts, bench/deltas.ts). Client messages are inflated by
 * the shared decompressor in both modes (uWS then asks clients for `client_no_context_takeover`).
 * `maxPayloadLength` (CLIENT_MAX_BYTES, from `maxHttpBufferSize`) bounds a client message after
 * inflating: past it uWS stops inflating and closes the connection ("Received too big message,
 * or other inflation error", 1006), as for an uncompressed frame over it.
 * Engine.IO's `perMessageDeflate.threshold` decides for direct writes (acks, replays), the
 * broadcast's `compressFrom` for room publishes.
 */
function compressionOptions(uws: UwsModule, mode: 'shared' | 'context'): object {
  const compressor = mode === 'context' ? uws.DEDICATED_COMPRESSOR_4KB : uws.SHARED_COMPRESSOR;
  return { compression: compressor | uws.SHARED_DECOMPRESSOR, perMessageDeflate: { threshold: COMPRESSION_THRESHOLD_BYTES } };
}

/** Serves Socket.IO (via `io.attachApp`) and herald's HTTP routes on one uWS app. */
export function startUwsTransport(uws: UwsModule, opts: TransportOptions): Promise<RunningTransport> {
  const app: TemplatedApp = uws.App();
  attachEngine(opts.io, app, opts.compression ? compressionOptions(uws, opts.compression) : {});
  const admission = opts.admission;
  if (admission) installAdmission(opts.io, admission, opts.http.replicaId);
  opts.delivery.current = new UwsDelivery(app, { batchMs: opts.broadcastBatchMs, ...(opts.compression ? { compressFrom: COMPRESSION_THRESHOLD_BYTES } : {}) });
  // Socket.IO registered `/socket.io/*`, which is more specific and therefore wins over this.
  app.any('/*', (res, req) => {
    const method = req.getMethod().toUpperCase();
    const headers: Record<string, string> = {};
    req.forEach((k, v) => {
      headers[k] = v;
    });
    const request = {
      method,
      path: req.getUrl(),
      query: new URLSearchParams(req.getQuery() ?? ''),
      headers,
      remoteAddress: Buffer.from(res.getRemoteAddressAsText()).toString(),
    };
    if (uwsClosesAfter(headers.connection)) sayConnectionClose(res);
    // `req` is invalid after this point; `res` until it is ended or aborted.
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    let aborted: (() => void) | undefined;
    res.onAborted(() => {
      done = true;
      clearTimeout(timer);
      aborted?.();
    });
    const send = (reply: HttpReply, closeConnection = false) => {
      if (done) return;
      done = true;
      if (reply.stream) {
        aborted = openUwsStream(res, reply, opts.http.replicaId);
        return;
      }
      const { body, headers } = renderReply(reply, opts.http.replicaId);
      const close = closeConnection || opts.http.closingConnections();
      res.cork(() => {
        res.writeStatus(statusLine(reply.status));
        for (const [k, v] of headers) res.writeHeader(k, v);
        res.end(body, close);
      });
    };
    const dispatch = (body: Buffer) => {
      opts.http.handle({ ...request, body }).then(send, () => send(errorReply(new HeraldError('internal'))));
    };
    if (!methodHasBody(method)) {
      dispatch(Buffer.alloc(0));
      return;
    }
    const collector = new BodyCollector(opts.http.maxBodyBytes);
    // Always closed after, as nginx does after a 413: each refused body costs its sender a connection.
    const tooLarge = () => send(errorReply(new HeraldError('payload_too_large')), true);
    if (collector.declaredPastCap(headers)) {
      tooLarge();
      return;
    }
    // The body must be in by the deadline, however it trickles; uWS's own clock is kept from
    // ending the request first (UWS_CLOCK_RESTART_MS).
    const deadline = performance.now() + opts.http.requestTimeoutMs;
    const tick = () => {
      if (done) return;
      const left = deadline - performance.now();
      if (left <= 0) {
        send(errorReply(new HeraldError('request_timeout')), true);
        return;
      }
      res.pause();
      res.resume();
      timer = setTimeout(tick, Math.min(left, UWS_CLOCK_RESTART_MS));
    };
    timer = setTimeout(tick, Math.min(opts.http.requestTimeoutMs, UWS_CLOCK_RESTART_MS));
    res.onData((chunk, isLast) => {
      if (done) return;
      if (isLast) clearTimeout(timer);
      // The ArrayBuffer is neutered after this callback returns: copy what is kept.
      collector.add(chunk.byteLength, () => Buffer.from(new Uint8Array(chunk)));
      if (collector.pastCap) {
        clearTimeout(timer);
        tooLarge();
      } else if (isLast) collector.overLimit ? tooLarge() : dispatch(collector.body());
    });
  });

  const listener = listenUws(uws, app, opts.host, opts.port);
  const limit = admission?.descriptorLimit;
  const guard = admission && limit !== undefined
    ? new AcceptGuard(limit, listener, { paused: (n) => admission.acceptPaused(n), resumed: (n) => admission.acceptResumed(n), resumeFailed: (n) => admission.acceptResumeFailed(n) })
    : undefined;
  guard?.start();
  return Promise.resolve({
    kind: 'uws',
    port: listener.port,
    stopListening() {
      guard?.stop();
      listener.close();
    },
  });
}
