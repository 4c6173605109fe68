/**
 * The shape of herald's HTTP routes, the same on both transports: what a route file needs and
 * nothing else, so route files in every folder import downwards (the transports serve them:
 * src/transport/http.ts).
 */

/** A fully read HTTP request. Header names are lower-case. */
export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: Readonly<Record<string, string>>;
  readonly remoteAddress: string;
  readonly body: Buffer;
  /** Values of the route's `:name` segments, URL-decoded. */
  readonly params: Readonly<Record<string, string>>;
}

/** A reply: JSON unless `contentType` is given, in which case `body` is sent as the string it is. */
export interface HttpReply {
  readonly status: number;
  readonly body: unknown;
  readonly contentType?: string;
}

export interface Route {
  readonly method: 'GET' | 'POST';
  /** Exact path; a segment `:name` matches any one segment and is passed in `params`. */
  readonly path: string;
  /** Throws a `HeraldError` (src/errors.ts) to answer with its code and status. */
  handle(req: HttpRequest): HttpReply | Promise<HttpReply>;
}
