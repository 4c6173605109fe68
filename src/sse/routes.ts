import type { AccessPolicy } from '../auth/access.js';
import { ANONYMOUS, identityFromClaims, type Identity } from '../auth/identity.js';
import type { TokenVerifier } from '../auth/jwt.js';
import type { ConnectProxy, SubscribeProxy } from '../auth/proxy.js';
import { HeraldError, toHeraldError, type ErrorCode } from '../errors.js';
import type { HistoryRooms, RoomBudget } from '../history/rooms.js';
import type { HttpReply, HttpRequest, Route } from '../http/route.js';
import { clientAddress, type TrustedProxies } from '../limits/client-ip.js';
import type { KeyedLimiter } from '../limits/token-bucket.js';
import type { Metrics } from '../observability/metrics.js';
import { DISCONNECT_EVENT, LAST_MAX, TOKEN_EXPIRING_EVENT, type MessageId } from '../protocol/events.js';
import { isStreamId } from '../protocol/ids.js';
import { isConnectionRoom, validateRoom, type RoomName } from '../protocol/rooms.js';
import { decodeEventId, eventIdMaxChars, roomsTag, type StreamPositions } from './event-id.js';
import { follow, type FollowDeps } from './follow.js';
import { eventFrame, retryLine } from './frames.js';
import { SseStream } from './stream.js';

/** The path of the event stream, under the HTTP API's prefix. */
export const STREAM_PATH = '/v1/stream';

/** The transport label of event streams in `herald_connections{transport}` and `herald_connections_total`. */
export const SSE_TRANSPORT = 'sse';

/** `herald:token_expiring` is sent this long before a stream's token expires (as for Socket.IO). */
const EXPIRY_NOTICE_MS = 60_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface StreamRouteDeps extends Omit<FollowDeps, 'history'> {
  history: HistoryRooms | undefined;
  policy: AccessPolicy;
  /** The token verifier behind the revocation guard; undefined: no JWT configured. */
  verifier: TokenVerifier | undefined;
  connectProxy: ConnectProxy | undefined;
  subscribeProxy: SubscribeProxy | undefined;
  allowAnonymous: boolean;
  clockSkewMs: number;
  /** Refusing new connections: draining (`draining`) or cut off from Redis (`redis_unreachable`). */
  refusing(): 'draining' | 'redis_unreachable' | undefined;
  /** `over_capacity` while this replica holds MAX_CONNECTIONS connections (Socket.IO's and streams), `overloaded` while its event loop is behind (HANDSHAKE_MAX_LAG_MS). */
  busy(): 'over_capacity' | 'overloaded' | undefined;
  /** CONNECT_RATE_PER_IP / CONNECT_BURST_PER_IP, shared with Socket.IO handshakes. */
  connects: KeyedLimiter;
  newRooms(address: string): RoomBudget;
  trustProxy: TrustedProxies;
  maxRooms: number;
  retryMs: number;
  /** SLOW_CLIENT_MAX_BYTES. */
  boundBytes: number;
  replicaId: string;
  /** CORS_ORIGINS: browser origins that may open streams (`*`: any). */
  corsOrigins: readonly string[];
}

/**
 * `GET /v1/stream?room=<a>&room=<b>` with `Accept: text/event-stream`: Server-Sent Events of those
 * rooms (docs/reference/sse.md). Authenticated like a Socket.IO connection (a JWT in
 * `Authorization: Bearer`, or `?token=` for EventSource, which cannot set headers; else the
 * connect proxy with the request's cookies; else anonymous where allowed), each room allowed
 * like a `subscribe` (claims, PUBLIC_ROOMS, the subscribe proxy). What a reader can fix is
 * refused with its status and code before the stream starts (EventSource does not retry those);
 * what another replica would serve (draining, cut off from Redis, full, connecting too fast) is
 * a stream of one `herald:disconnect` that ends with a `retry:`, so EventSource comes back
 * through the balancer.
 */
export function streamRoutes(deps: StreamRouteDeps): Route[] {
  const idMax = eventIdMaxChars(deps.maxRooms);
  return [
    {
      method: 'GET',
      path: STREAM_PATH,
      async handle(req) {
        assertEventStream(req.headers.accept);
        const cors = corsHeaders(req.headers.origin, deps.corsOrigins);
        const address = clientAddress(req.headers['x-forwarded-for'], req.remoteAddress, deps.trustProxy);
        const rooms = roomsOf(req.query, deps.maxRooms);
        const start = startOf(req.query);
        const busy = unavailable(deps) ?? (deps.connects.take(address) ? undefined : 'rate_limited');
        if (busy) {
          if (busy === 'rate_limited') deps.metrics.authFailed('rate_limited');
          return bounce(busy, deps.retryMs, cors);
        }
        if (!deps.hub.mayOpen(address)) throw new HeraldError('too_many_streams');
        const identity = await authenticate(req, address, deps);
        const id = deps.hub.newId();
        for (const room of rooms) await authorize(identity, room, id, deps);
        const historyRooms = rooms.filter((r) => deps.history?.policyFor(r) !== undefined);
        const tag = roomsTag(historyRooms);
        const positions = resumeFrom(req, start.since, tag, historyRooms.length, idMax);
        const resuming = positions !== undefined;
        // Checked again now that the awaits are over (a token's check, the proxies): requests
        // that were all under the limits when they arrived must not all open. The stream opens
        // in this same turn.
        const late = unavailable(deps);
        if (late) return bounce(late, deps.retryMs, cors);
        if (!deps.hub.mayOpen(address)) throw new HeraldError('too_many_streams');
        return {
          status: 200,
          body: null,
          headers: [...SSE_HEADERS, ...cors],
          stream(sink) {
            const refused = unavailable(deps) ?? (deps.hub.mayOpen(address) ? undefined : 'too_many_streams');
            if (refused) {
              sink.write(retryLine(deps.retryMs + Math.floor(Math.random() * deps.retryMs)) + eventFrame(DISCONNECT_EVENT, new HeraldError(refused).toBody()));
              return sink.end();
            }
            const stream = new SseStream(sink, { id, identity, address, rooms, historyRooms, tag, positions: positions ?? historyRooms.map(() => undefined), boundBytes: deps.boundBytes });
            deps.hub.add(stream, SSE_TRANSPORT);
            stream.start(deps.retryMs, { replica: deps.replicaId, client: id });
            armExpiry(stream, identity, deps.clockSkewMs);
            const budget = deps.newRooms(address);
            for (const room of rooms) {
              const at = historyRooms.indexOf(room);
              const since = at === -1 ? undefined : positions?.[at];
              void follow(stream, room, deps, { ...(since !== undefined ? { since } : {}), ...(start.last !== undefined ? { last: start.last } : {}), resuming, budget });
            }
          },
        } satisfies HttpReply;
      },
    },
    {
      // A browser asks first when a page elsewhere sends `Last-Event-ID` (not a CORS-safelisted header).
      method: 'OPTIONS',
      path: STREAM_PATH,
      handle(req) {
        const cors = corsHeaders(req.headers.origin, deps.corsOrigins);
        return {
          status: 204,
          body: '',
          contentType: 'text/plain',
          headers: [...cors, ['access-control-allow-methods', 'GET'], ['access-control-allow-headers', 'last-event-id, authorization, accept'], ['access-control-max-age', '600']],
        };
      },
    },
  ];
}

/** What a stream answers with: no buffering by proxies, no caching, no transformation. */
export const SSE_HEADERS: readonly (readonly [string, string])[] = [
  ['content-type', 'text/event-stream; charset=utf-8'],
  ['cache-control', 'no-cache, no-transform'],
  // nginx buffers proxied responses unless told not to.
  ['x-accel-buffering', 'no'],
];

/** Why this replica cannot take a stream now (draining, cut off from Redis, MAX_CONNECTIONS, behind), if it cannot. */
function unavailable(deps: StreamRouteDeps): 'draining' | 'redis_unreachable' | 'over_capacity' | 'overloaded' | undefined {
  return deps.refusing() ?? deps.busy();
}

/** A stream that says "another replica" and ends: `retry:` with jitter, then `herald:disconnect {code}`. */
function bounce(code: ErrorCode, retryMs: number, cors: readonly (readonly [string, string])[]): HttpReply {
  const body = new HeraldError(code).toBody();
  return {
    status: 200,
    body: null,
    headers: [...SSE_HEADERS, ...cors],
    stream(sink) {
      sink.write(retryLine(retryMs + Math.floor(Math.random() * retryMs)) + eventFrame(DISCONNECT_EVENT, body));
      sink.end();
    },
  };
}

/**
 * A page on another origin reads a stream only with these (EventSource is a CORS request, with
 * cookies when `withCredentials`). An `Origin` not in CORS_ORIGINS is refused (403 `forbidden`),
 * as Socket.IO refuses its WebSocket handshake: a page elsewhere must not read a stream opened
 * with its visitor's cookies (the connect proxy).
 */
function corsHeaders(origin: string | undefined, allowed: readonly string[]): [string, string][] {
  if (origin === undefined) return [];
  if (!allowed.includes('*') && !allowed.includes(origin)) throw new HeraldError('forbidden', `Origin ${origin.slice(0, 200)} is not in CORS_ORIGINS.`);
  return [
    ['access-control-allow-origin', origin],
    ['access-control-allow-credentials', 'true'],
    ['vary', 'origin'],
  ];
}

function assertEventStream(accept: string | undefined): void {
  if (accept === undefined || accept === '') return;
  if (!/text\/event-stream|\*\/\*|text\/\*/.test(accept)) throw new HeraldError('not_event_stream');
}

/** The request's rooms, each once, in order; at least one and at most `max`. */
function roomsOf(query: URLSearchParams, max: number): RoomName[] {
  const named = query.getAll('room');
  if (named.length === 0) throw new HeraldError('bad_request', 'Name at least one room: ?room=<name>, repeated for more.');
  if (named.length > max) throw new HeraldError('too_many_subscriptions', `A stream may name at most ${max} rooms (SSE_MAX_ROOMS).`);
  const rooms = [...new Set(named.map((r) => validateRoom(r)))];
  for (const room of rooms) {
    if (isConnectionRoom(room)) throw new HeraldError('forbidden', `"${room}" has the shape of a connection id (20 letters, digits, _ or -); such rooms are reserved.`);
  }
  return rooms;
}

function startOf(query: URLSearchParams): { since: string | undefined; last: number | undefined } {
  const since = query.get('since') ?? undefined;
  const rawLast = query.get('last');
  if (rawLast === null) return { since, last: undefined };
  const last = Number(rawLast);
  if (!/^\d+$/.test(rawLast) || last > LAST_MAX) {
    throw new HeraldError('bad_request', `"last" must be a whole number from 0 to ${LAST_MAX}: how many of each history room's newest messages to send first.`);
  }
  return { since, last };
}

/**
 * Where the stream's history rooms resume: `Last-Event-ID` (a reconnect) wins over `since` (a
 * first request). `since` is an `id:` of an earlier stream of the same rooms, or, for a stream
 * with one history room, a plain `meta.id`. Undefined: a fresh stream.
 */
function resumeFrom(req: HttpRequest, since: string | undefined, tag: string, rooms: number, maxChars: number): StreamPositions | undefined {
  const header = req.headers['last-event-id'];
  const raw = header !== undefined && header !== '' ? header : since;
  if (raw === undefined || raw === '') return undefined;
  if (raw === since && rooms === 1 && isStreamId(raw)) return [raw as MessageId];
  if (rooms === 0) {
    // Nothing to resume; a plain `since` or an id of no history room is still checked for shape.
    if (raw.length > maxChars) throw new HeraldError('invalid_last_event_id', `The stream id is longer than ${maxChars} characters, the most this replica writes.`);
    return [];
  }
  return decodeEventId(raw, tag, rooms, maxChars);
}

async function authenticate(req: HttpRequest, address: string, deps: StreamRouteDeps): Promise<Identity> {
  const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
  const token = bearer ?? req.query.get('token') ?? undefined;
  try {
    if (token !== undefined && token !== '' && deps.verifier) return identityFromClaims(await deps.verifier.verify(token));
    if (deps.connectProxy) return await deps.connectProxy.admitRequest(req.headers, {}, address);
    if (!deps.allowAnonymous) throw new HeraldError('unauthorized', 'A token is required: send "Authorization: Bearer <jwt>", or ?token=<jwt> from EventSource.');
    return ANONYMOUS;
  } catch (err) {
    const herr = toHeraldError(err);
    deps.metrics.authFailed(herr.code);
    throw herr;
  }
}

async function authorize(identity: Identity, room: RoomName, client: string, deps: StreamRouteDeps): Promise<void> {
  if (deps.policy.canSubscribe(identity, room)) return;
  if (!deps.subscribeProxy?.covers(room)) throw new HeraldError('forbidden', `Not allowed to subscribe to "${room}".`);
  await deps.subscribeProxy.authorize(client, identity, room);
}

/** `herald:token_expiring` a minute before the token's `exp` (plus the skew allowance), `herald:disconnect {code: "token_expired"}` and the end at it. */
function armExpiry(stream: SseStream, identity: Identity, skewMs: number): void {
  if (identity.expiresAt === undefined) return;
  const deadline = identity.expiresAt + skewMs;
  const notifyAt = deadline - EXPIRY_NOTICE_MS;
  let notified = false;
  const step = () => {
    if (stream.closed) return;
    const now = Date.now();
    if (now >= deadline) return stream.close(new HeraldError('token_expired').toBody());
    if (now >= notifyAt && !notified) {
      notified = true;
      stream.event(TOKEN_EXPIRING_EVENT, { expiresIn: Math.ceil((deadline - now) / 1000) });
    }
    stream.timer = setTimeout(step, Math.min(MAX_TIMER_MS, (now >= notifyAt ? deadline : notifyAt) - now));
  };
  step();
}
