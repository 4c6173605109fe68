import { STATUS_CODES } from 'node:http';
import { HeraldError, toHeraldError } from '../errors.js';
import type { Logger } from '../observability/logger.js';

/** A fully read HTTP request, the same on both transports. Header names are lower-case. */
export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: Readonly<Record<string, string>>;
  readonly remoteAddress: string;
  readonly body: Buffer;
}

/** A JSON reply. */
export interface HttpReply {
  readonly status: number;
  readonly body: unknown;
}

export interface Route {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  handle(req: HttpRequest): HttpReply | Promise<HttpReply>;
}

/** What a transport needs to serve herald's HTTP routes. */
export interface HttpService {
  /** Bodies above this many bytes are refused with 413 before they are buffered. */
  readonly maxBodyBytes: number;
  /** Sent as `x-herald-replica` on every reply. */
  readonly replicaId: string;
  handle(req: HttpRequest): Promise<HttpReply>;
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
  replicaId: string;
  logger: Logger;
}): HttpService {
  const { routes, logger } = opts;
  return {
    maxBodyBytes: opts.maxBodyBytes,
    replicaId: opts.replicaId,
    async handle(req) {
      const onPath = routes.filter((r) => r.path === req.path);
      const route = onPath.find((r) => r.method === req.method);
      if (!route) return errorReply(new HeraldError(onPath.length > 0 ? 'method_not_allowed' : 'not_found'));
      try {
        return await route.handle(req);
      } catch (err) {
        const herr = toHeraldError(err);
        if (herr.code === 'internal') logger.error({ err: herr.cause, path: req.path }, 'request failed');
        return errorReply(herr);
      }
    },
  };
}
