import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Server } from 'socket.io';
import { HeraldError } from '../errors.js';
import { effectiveMaxConnections, softDescriptorLimit } from '../limits/descriptors.js';
import { LoopLag } from '../limits/loop-lag.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { errorReply, renderReply, statusLine } from './http.js';
import { REFUSAL_CODES, type RefusalReason, type TransportAdmission } from './types.js';

/** Seconds a refused client is told to wait (`Retry-After`); socket.io-client's own backoff starts at 1 s too. */
const RETRY_AFTER_SECONDS = '1';

/**
 * Refuses new Engine.IO connections for as long as `admission.refusal` gives a reason: once this
 * replica holds MAX_CONNECTIONS (503 `over_capacity`), or while its event loop is behind (503
 * `overloaded`). WebSocket upgrades and long-polling handshakes (requests without `sid`), on both
 * transports, are answered with `Connection: close` and the connection is closed, so its
 * descriptor is free again at once. A balancer takes the 503 as "try another server" (HAProxy
 * `retry-on 503`, or its health checks), and socket.io-client retries with its backoff. Requests
 * of existing sessions (polling with `sid`, the upgrade of a polling session) always pass: their
 * descriptors are counted already.
 *
 * An Engine.IO middleware, so it runs before `allowRequest` (whose refusals are Engine.IO's 403)
 * and costs a comparison and a clock read per handshake. Engine.IO runs middlewares for every
 * request of its path, with a `ServerResponse` for polling on the node transport, a response
 * without a body for node upgrades (the socket is written directly), and its wrapper of uWS's
 * response on uWS.
 */
export function installAdmission(io: Server, admission: TransportAdmission, replicaId: string): void {
  const refusal = admission.refusal;
  if (!refusal) return;
  const replies = { capacity: refusalReply('capacity', replicaId), overloaded: refusalReply('overloaded', replicaId) };
  io.engine.use((req: IncomingMessage & { _query?: Record<string, string> }, res: unknown, next: (err?: Error) => void) => {
    const reason = req._query?.sid === undefined ? refusal(io.engine.clientsCount) : undefined;
    if (reason === undefined) return next();
    admission.refused(reason);
    refuse(req, res, replies[reason].body, replies[reason].headers);
  });
}

/** The 503 body and headers of a handshake refused for `reason`. */
function refusalReply(reason: RefusalReason, replicaId: string): { body: string; headers: [string, string][] } {
  const { body, headers } = renderReply(errorReply(new HeraldError(REFUSAL_CODES[reason])), replicaId);
  return { body, headers: [...headers, ['retry-after', RETRY_AFTER_SECONDS], ['connection', 'close']] };
}

/** Writes the 503 on whichever response Engine.IO handed the middleware, and closes the connection. */
function refuse(req: IncomingMessage, res: unknown, body: string, headers: [string, string][]): void {
  const status = statusLine(503);
  const uws = uwsResponse(res);
  if (uws) {
    uws.cork(() => {
      uws.writeStatus(status);
      // `connection: close` is uWS's to write when it closes (end's second argument).
      for (const [k, v] of headers) if (k !== 'connection') uws.writeHeader(k, v);
      uws.end(body, true);
    });
    return;
  }
  if (res instanceof ServerResponse) {
    res.writeHead(503, Object.fromEntries([...headers, ['content-length', String(Buffer.byteLength(body))]]));
    res.end(body);
    return;
  }
  // A node WebSocket upgrade: the socket is still plain HTTP; the answer goes on it as bytes.
  const socket: Duplex = req.socket;
  const head = headers.map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.end(`HTTP/1.1 ${status}\r\n${head}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, () => socket.destroy());
}

/** The parts of a uWS HttpResponse the refusal uses. */
interface UwsResponse {
  cork(fn: () => void): void;
  writeStatus(status: string): unknown;
  writeHeader(key: string, value: string): unknown;
  end(body: string, closeConnection: boolean): unknown;
}

/**
 * uWS's own response behind Engine.IO's wrapper (`ResponseWrapper.res`, engine.io 6.x), whose
 * `end` cannot close the connection: herald closes it, so a refused client's descriptor does not
 * wait for uWS's idle timeout. test/capacity.test.ts checks that refused connections are closed.
 */
function uwsResponse(res: unknown): UwsResponse | undefined {
  const raw = (res as { res?: Partial<UwsResponse> & { getRemoteAddressAsText?: unknown } } | undefined)?.res;
  return raw && typeof raw.getRemoteAddressAsText === 'function' ? (raw as UwsResponse) : undefined;
}


/**
 * MAX_CONNECTIONS as this process can hold it, the event-loop watch behind HANDSHAKE_MAX_LAG_MS
 * (0: none), and the events of admission wired to metrics and logs. Reads the descriptor limit
 * once, at start.
 */
export function createAdmission(configured: number, maxLagMs: number, metrics: Metrics, logger: Logger, otherConnections: () => number = () => 0): TransportAdmission {
  const limit = softDescriptorLimit();
  const { max, lowered } = effectiveMaxConnections(configured, limit);
  if (lowered) logger.warn({ configured, maxConnections: max, descriptorLimit: limit }, 'MAX_CONNECTIONS is more than the descriptor limit can hold; lowered');
  logger.info({ maxConnections: max ?? null, descriptorLimit: limit ?? null }, max === undefined ? 'descriptor limit unknown: no connection cap' : 'connection cap');
  metrics.setMaxConnections(max);
  const lag = maxLagMs > 0 ? new LoopLag(maxLagMs).start() : undefined;
  const failed = throttle(10_000);
  const shedding = throttle(10_000);
  return {
    refusal:
      max === undefined && !lag
        ? undefined
        : (engineConnections) => (max !== undefined && engineConnections + otherConnections() >= max ? 'capacity' : lag?.behind() ? 'overloaded' : undefined),
    descriptorLimit: limit,
    refused(reason) {
      metrics.connectionRefused(reason);
      if (reason === 'overloaded' && shedding.due()) logger.warn({ lagMs: Math.round(lag!.lagMs()), maxLagMs }, 'event loop behind: refusing new handshakes (503 overloaded)');
    },
    acceptPaused(open) {
      metrics.acceptingChanged(false);
      logger.warn({ openDescriptors: open, descriptorLimit: limit }, 'file descriptors nearly gone: stopped accepting connections');
    },
    acceptResumed(open) {
      metrics.acceptingChanged(true);
      logger.info({ openDescriptors: open, descriptorLimit: limit }, 'accepting connections again');
    },
    acceptResumeFailed(open) {
      if (failed.due()) logger.error({ openDescriptors: open }, 'could not listen again on the port; retrying');
    },
    close: () => lag?.stop(),
  };
}
