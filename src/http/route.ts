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

/**
 * A reply: JSON unless `contentType` is given, in which case `body` is sent as the string it is;
 * or, with `stream`, a response that stays open (Server-Sent Events): the transport writes
 * `status` and `headers` and hands `stream` the connection to write to.
 */
export interface HttpReply {
  readonly status: number;
  readonly body: unknown;
  readonly contentType?: string;
  /** Extra headers (lower-case names), sent with a stream. */
  readonly headers?: readonly (readonly [string, string])[];
  readonly stream?: (sink: StreamSink) => void;
}

/**
 * An open response as a transport lends it to a streaming route. Writes never block and are never
 * dropped: what the peer has not taken yet is queued, and `queuedBytes` says how much, so the
 * route can bound it (a reader that never reads) and close.
 */
export interface StreamSink {
  /** Writes `chunk` (or queues it while the peer is not reading). False once the response is closed. */
  write(chunk: string): boolean;
  /** Bytes written and not yet handed to the kernel, as closely as the transport can tell. */
  readonly queuedBytes: number;
  /** Calls `fn` once, when the queue has been handed to the kernel (at once when it is empty). */
  whenDrained(fn: () => void): void;
  /** Ends the response (a clean end of the chunked body); nothing more is written. */
  end(): void;
  /** Calls `fn` once when the response is over: ended here, or closed by the peer. */
  onClose(fn: () => void): void;
  /** True once the response is over. */
  readonly closed: boolean;
}

export interface Route {
  readonly method: 'GET' | 'POST' | 'OPTIONS';
  /** Exact path; a segment `:name` matches any one segment and is passed in `params`. */
  readonly path: string;
  /** Throws a `HeraldError` (src/errors.ts) to answer with its code and status. */
  handle(req: HttpRequest): HttpReply | Promise<HttpReply>;
}
