import { STATUS_CODES } from 'node:http';
import { HeraldError, toHeraldError } from '../errors.js';
import type { HttpReply, HttpRequest, Route, StreamSink } from '../http/route.js';
import type { Logger } from '../observability/logger.js';

// The transports (node.ts, uws.ts) take the request and reply shapes from here, with the helpers.
export type { HttpReply, HttpRequest, Route, StreamSink };

/** The bytes and headers of a reply, the same on both transports. */
export function renderReply(reply: HttpReply, replicaId: string): { body: string; headers: [string, string][] } {
  const headers = replyHeaders(replicaId);
  if (reply.contentType) headers[0] = ['content-type', reply.contentType];
  for (const [k, v] of reply.headers ?? []) headers.push([k, v]);
  return { body: reply.contentType ? String(reply.body) : JSON.stringify(reply.body), headers };
}

/** The head of a streaming reply: the route's headers and the replica's. */
export function streamHeaders(reply: HttpReply, replicaId: string): [string, string][] {
  return [['x-herald-replica', replicaId], ...(reply.headers ?? []).map(([k, v]): [string, string] => [k, v])];
}

/** What a transport needs to serve herald's HTTP routes. */
export interface HttpService {
  /** Bodies above this many bytes are refused with 413 before they are buffered. */
  readonly maxBodyBytes: number;
  /** A request whose body has not fully arrived by then gets 408 and its connection is closed. */
  readonly requestTimeoutMs: number;
  /** Sent as `x-herald-replica` on every reply. */
  readonly replicaId: string;
  handle(req: Omit<HttpRequest, 'params'>): Promise<HttpReply>;
  /**
   * True once the replica drains: each reply then closes its connection (`Connection: close`),
   * so a client sends its next request to the balancer again, not down a connection that the
   * process's exit would reset.
   */
  closingConnections(): boolean;
  /** Requests handed to a route and not answered yet (`herald_http_requests_in_flight`). */
  readonly inFlight: number;
  /** Resolves once no request is in flight (at once when none is): the drain waits for it before Redis closes. */
  settled(): Promise<void>;
}

export function errorReply(err: HeraldError): HttpReply {
  return { status: err.status, body: { error: err.toBody() } };
}

export function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? 'Unknown'}`;
}

export function replyHeaders(replicaId: string): [string, string][] {
  return [
    ['content-type', 'application/json; charset=utf-8'],
    ['cache-control', 'no-store'],
    ['x-herald-replica', replicaId],
  ];
}

/** Routes by exact path; unknown paths get 404, known paths with another method 405. */
export function createHttpService(opts: {
  routes: readonly Route[];
  maxBodyBytes: number;
  requestTimeoutMs: number;
  replicaId: string;
  logger: Logger;
  /** True once the replica drains (see `HttpService.closingConnections`). */
  closing?: () => boolean;
}): HttpService {
  const { routes, logger } = opts;
  let inFlight = 0;
  // Resolved when the count falls to 0; bounded: one per drain waiting.
  let waiters: (() => void)[] = [];
  const wake = () => {
    if (inFlight > 0) return;
    const ready = waiters;
    waiters = [];
    for (const w of ready) w();
  };
  const route = async (req: Omit<HttpRequest, 'params'>): Promise<HttpReply> => {
    const onPath = routes.flatMap((route) => {
      const params = matchPath(route.path, req.path);
      return params ? [{ route, params }] : [];
    });
    const hit = onPath.find((r) => r.route.method === req.method);
    if (!hit) return errorReply(new HeraldError(onPath.length > 0 ? 'method_not_allowed' : 'not_found'));
    try {
      return await hit.route.handle({ ...req, params: hit.params });
    } catch (err) {
      const herr = toHeraldError(err);
      if (herr.code === 'internal') logger.error({ err: herr.cause, path: req.path }, 'request failed');
      return errorReply(herr);
    }
  };
  return {
    maxBodyBytes: opts.maxBodyBytes,
    requestTimeoutMs: opts.requestTimeoutMs,
    replicaId: opts.replicaId,
    closingConnections: opts.closing ?? (() => false),
    get inFlight() {
      return inFlight;
    },
    settled() {
      return inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve));
    },
    // A request counts until its reply is decided (an event stream: until it opened).
    async handle(req) {
      inFlight++;
      try {
        return await route(req);
      } finally {
        // Woken after the transport has written this reply (it does so when `handle` resolves).
        if (--inFlight === 0 && waiters.length > 0) setImmediate(wake);
      }
    },
  };
}

/** Params of `path` against a route pattern, or undefined when it does not match. */
function matchPath(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    if (w.startsWith(':')) {
      try {
        params[w.slice(1)] = decodeURIComponent(got[i]!);
      } catch {
        return undefined;
      }
    } else if (w !== got[i]) {
      return undefined;
    }
  }
  return params;
}

/** Methods whose body herald reads; others are dispatched with an empty body. */
export function methodHasBody(method: string): boolean {
  return method === 'POST' || method === 'PUT' || method === 'PATCH';
}

/**
 * The least a body over the limit is read (and discarded) up to before herald gives up on it. A
 * client writes its whole body before it reads the answer (Node's fetch, curl): closing while it
 * is still writing, or with its bytes unread (the kernel then sends a reset, which can destroy
 * the answer before it is read), gives it EPIPE or ECONNRESET instead of the 413. With a 1 MiB
 * floor, a 5 MB body got EPIPE in 4 of 5 tries on uWS. Reading costs bandwidth and time
 * (HTTP_REQUEST_TIMEOUT_SECONDS still applies), no memory.
 */
export const DISCARD_FLOOR_BYTES = 16 * 1024 * 1024;

/**
 * Buffers a request body up to `limit` bytes; both transports use it, so over-limit bodies are
 * handled the same way. Past the limit, the rest is read and discarded up to `discardCap` (4x the
 * limit, at least DISCARD_FLOOR_BYTES); once it is all in, the 413 is sent and the connection
 * closed. A body past `discardCap` (declared, or as it streams) is not read further: the 413 is
 * sent at once and the connection closed, and the client may see a broken pipe instead.
 */
export class BodyCollector {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private readonly discardCap: number;

  constructor(private readonly limit: number) {
    this.discardCap = Math.max(limit * 4, DISCARD_FLOOR_BYTES);
  }

  /** True when the declared Content-Length is past the discard cap: answer without reading. */
  declaredPastCap(headers: Readonly<Record<string, string>>): boolean {
    return Number(headers['content-length'] ?? 0) > this.discardCap;
  }

  /** Keeps `chunk` while under the limit. `copy` is called only for chunks that are kept. */
  add(length: number, copy: () => Buffer): void {
    this.size += length;
    if (this.size <= this.limit) this.chunks.push(copy());
  }

  get overLimit(): boolean {
    return this.size > this.limit;
  }

  get pastCap(): boolean {
    return this.size > this.discardCap;
  }

  body(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}
