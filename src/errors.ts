/**
 * herald's error catalogue. Every error a client, a publisher or an operator can see has a stable
 * code from this table; messages say what to do. Nothing user-facing throws a bare `Error`.
 */
export const ERRORS = {
  bad_request: { status: 400, message: 'The request is malformed.' },
  invalid_json: { status: 400, message: 'The request body is not valid JSON.' },
  invalid_room: {
    status: 400,
    message: 'Room names are 1-128 characters of A-Z a-z 0-9 and _ - : . @ =',
  },
  invalid_event: {
    status: 400,
    message: 'Event names are 1-64 printable characters, not a reserved Socket.IO name, not starting with "herald:".',
  },
  invalid_last_event_id: {
    status: 400,
    message: 'Last-Event-ID (or "since") must be an id: line of this stream, as herald wrote it (see docs/reference/sse.md).',
  },
  not_event_stream: { status: 406, message: 'This route answers Server-Sent Events: send "Accept: text/event-stream".' },
  too_many_streams: {
    status: 429,
    message: 'This address holds as many event streams on this replica as it may (SSE_STREAMS_PER_IP); close one first.',
  },
  invalid_since: { status: 400, message: '"since" must be a message id as received in meta.id (<ms>-<seq>).' },
  unavailable: {
    status: 503,
    message: 'History is unreachable (Redis is down); nothing was published. Retry, ideally against another replica.',
  },
  publish_timeout: {
    status: 503,
    message:
      'Redis did not confirm this publish within REDIS_TIMEOUT_SECONDS: it may or may not have been published. Retry with the same Idempotency-Key header; history rooms then publish it once.',
  },
  redis_unreachable: {
    status: 503,
    message: 'This replica cannot reach Redis; reconnect (socket.io-client does by itself) to be served by another replica.',
  },
  backend_busy: {
    status: 503,
    message: 'Too many requests are waiting for the backend that decides access (PROXY_MAX_CONCURRENCY); retry shortly.',
  },
  rate_limited: { status: 429, message: 'Too many requests; slow down.' },
  too_many_subscriptions: { status: 400, message: 'This connection has reached its subscription limit; unsubscribe first.' },
  too_many_new_rooms: {
    status: 429,
    message: 'This address has opened too many new history rooms (rooms without messages yet) in the last minute (HISTORY_NEW_ROOMS_PER_IP). Rooms that have messages still subscribe; retry the others in a minute.',
  },
  unknown_event: { status: 400, message: 'herald does not know this event.' },
  request_timeout: { status: 408, message: 'The request body did not arrive in time.' },
  payload_too_large: { status: 413, message: 'The request body is larger than the configured limit.' },
  unsupported_media_type: { status: 415, message: 'Send the body as application/json.' },
  unauthorized: { status: 401, message: 'Send a valid publish key as "Authorization: Bearer <key>".' },
  token_expired: { status: 401, message: 'The token has expired; get a fresh one and reconnect (or send it with "refresh").' },
  token_revoked: { status: 401, message: 'This token has been revoked; get a fresh one from your backend and reconnect.' },
  disconnected: { status: 403, message: 'Your backend closed this connection; do not reconnect until it says so.' },
  forbidden: { status: 403, message: 'This caller may not do this.' },
  not_found: { status: 404, message: 'No such route.' },
  method_not_allowed: { status: 405, message: 'This route does not accept that method.' },
  over_capacity: { status: 503, message: 'This replica holds as many connections as it may (MAX_CONNECTIONS); connect to another one.' },
  overloaded: { status: 503, message: 'This replica is too far behind to take a new connection now (HANDSHAKE_MAX_LAG_MS); retry shortly, or connect to another one.' },
  draining: { status: 503, message: 'This replica is shutting down; retry against another one.' },
  internal: { status: 500, message: 'An internal error occurred; it has been logged.' },
  stored_data_invalid: {
    status: 500,
    message: 'Data herald had stored in Redis could not be read back (damaged, or not written by this version of herald); it was skipped.',
  },
  config_invalid: { status: 500, message: 'The configuration is invalid.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/**
 * Whether `code` names an entry of the catalogue. An own-property check: `code in ERRORS` also
 * sees what every object inherits (`constructor`, `toString`, `__proto__`), and a backend's
 * answer must not pass those off as codes.
 */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

/** The shape errors take on the wire, in acks and in HTTP bodies. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

export class HeraldError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERRORS[code].message, options);
    this.name = 'HeraldError';
    this.code = code;
    this.status = ERRORS[code].status;
  }

  toBody(): ErrorBody {
    return { code: this.code, message: this.message };
  }
}

/** Maps anything thrown to a HeraldError; unknown errors become `internal` and keep their cause. */
export function toHeraldError(err: unknown): HeraldError {
  return err instanceof HeraldError ? err : new HeraldError('internal', undefined, { cause: err });
}

/**
 * The start-up error when a port cannot be listened on, the same on both transports and for
 * METRICS_PORT (an operator's error, not a client's: no catalogue code): it names the setting
 * and the address, and says what usually causes it.
 */
export class ListenError extends Error {
  /** `EADDRINUSE` when the port is known to be taken; uWS does not say why, so undefined there. */
  readonly code: string | undefined;

  constructor(setting: 'PORT' | 'METRICS_PORT', host: string, port: number, cause?: NodeJS.ErrnoException) {
    const why =
      cause?.code === 'EADDRINUSE'
        ? 'another process already listens on it (EADDRINUSE)'
        : cause?.code
          ? `${cause.code}: ${cause.message}`
          : 'another process already listens on it, or HOST is not an address of this machine';
    super(`could not listen on ${host}:${port} (${setting}=${port}): ${why}; choose a free ${setting} or stop the other process`, { cause });
    this.name = 'ListenError';
    this.code = cause?.code;
  }
}
