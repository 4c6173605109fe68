import type { Socket } from 'socket.io';
import type { Config } from '../config/schema.js';
import { clientIp } from '../limits/client-ip.js';
import { HeraldError, isErrorCode } from '../errors.js';
import { AnswerTooLarge, readCapped } from '../protocol/backend-answer.js';
import { SIGNATURE_HEADER, signatureOf } from '../protocol/signature.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { PatternTable } from '../protocol/patterns.js';
import type { RoomName } from '../protocol/rooms.js';
import { identityFromClaims, USER_ROOM_PREFIX, type Identity } from './identity.js';

type ProxyKind = 'subscribe' | 'connect';

/** Allow answers a replica remembers at most (PROXY_CACHE_SECONDS); the oldest go first. */
const CACHE_MAX_ENTRIES = 10_000;
/** A denial's message from the backend is shown to the client up to this length. */
const MESSAGE_MAX = 200;

export interface BackendCallsOptions {
  timeoutMs: number;
  maxConcurrency: number;
  /** WEBHOOK_SECRET: requests are signed like webhooks when it is set. */
  secret: string | undefined;
  metrics: Metrics;
  logger: Logger;
}

interface Answered {
  status: number;
  /** The parsed body when it was a JSON object. */
  body: Record<string, unknown> | undefined;
  seconds: number;
}

/**
 * The proxies' HTTP calls to the backend, both protected against a slow or failing one: each
 * waits at most `timeoutMs` (then the caller refuses: fail closed), and at most `maxConcurrency`
 * are in flight per replica. Past that a request is refused at once with `backend_busy` instead of
 * queued, so a flood of subscribes costs the backend nothing more and this replica no memory.
 */
export class BackendCalls {
  private inFlight = 0;
  private readonly failureLog = throttle(10_000);

  constructor(private readonly opts: BackendCallsOptions) {}

  async post(proxy: ProxyKind, url: URL, payload: unknown): Promise<Answered> {
    if (this.inFlight >= this.opts.maxConcurrency) {
      this.opts.metrics.proxyAnswered(proxy, 'busy');
      throw new HeraldError('backend_busy');
    }
    this.inFlight++;
    const body = JSON.stringify(payload);
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'herald' };
    if (this.opts.secret) headers[SIGNATURE_HEADER] = signatureOf(this.opts.secret, body);
    const started = performance.now();
    try {
      const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(this.opts.timeoutMs), redirect: 'manual' });
      const text = (await readCapped(res)).toString('utf8');
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      const isObject = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
      return { status: res.status, body: isObject ? (parsed as Record<string, unknown>) : undefined, seconds: (performance.now() - started) / 1000 };
    } catch (err) {
      const seconds = (performance.now() - started) / 1000;
      this.opts.metrics.proxyAnswered(proxy, 'unavailable', seconds);
      if (this.failureLog.due()) this.opts.logger.warn({ proxy, err: (err as Error).message }, `${proxy} proxy failed; refusing (fail closed)`);
      throw new HeraldError('unavailable', this.failureMessage(err), { cause: err });
    } finally {
      this.inFlight--;
    }
  }

  private failureMessage(err: unknown): string {
    if (err instanceof AnswerTooLarge) return `The backend that decides access answered with more than ${err.maxBytes} bytes, so this was refused.`;
    if ((err as Error).name === 'TimeoutError') return `The backend that decides access did not answer within ${this.opts.timeoutMs} ms, so this was refused. Retry.`;
    return 'The backend that decides access is unreachable, so this was refused. Retry.';
  }

  /** Counts and throws the refusal for an answer that is neither an allow nor a deny. */
  invalid(proxy: ProxyKind, answer: Answered): never {
    this.opts.metrics.proxyAnswered(proxy, 'unavailable', answer.seconds);
    if (this.failureLog.due()) this.opts.logger.warn({ proxy, status: answer.status }, `${proxy} proxy gave an answer herald cannot read; refusing (fail closed)`);
    throw new HeraldError('unavailable', `The backend that decides access answered ${answer.status} without a decision herald can read, so this was refused.`);
  }
}

/**
 * SUBSCRIBE_PROXY_URL: the backend decides subscribes to PROXY_ROOMS rooms that neither
 * PUBLIC_ROOMS nor the token allows. `{allow: true}` joins; `{allow: false, code?, message?}`
 * refuses with `code` when it is one of herald's error codes (else `forbidden`); anything else
 * refuses with `unavailable`. `user:` rooms are never asked about: only their user may join them.
 */
export class SubscribeProxy {
  private readonly rooms: PatternTable<true>;
  private readonly cache = new Map<string, number>();

  constructor(
    private readonly url: URL,
    patterns: readonly string[],
    private readonly calls: BackendCalls,
    private readonly cacheMs: number,
    private readonly metrics: Metrics,
  ) {
    this.rooms = new PatternTable(patterns.map((pattern) => ({ pattern, value: true as const })));
  }

  covers(room: RoomName): boolean {
    return !room.startsWith(USER_ROOM_PREFIX) && this.rooms.match(room) !== undefined;
  }

  /** Resolves when the backend allows `identity` on connection `client` into `room`; throws its refusal. */
  async authorize(client: string, identity: Identity, room: RoomName): Promise<void> {
    // Anonymous connections are remembered per connection, users per user.
    const key = `${identity.userId ?? `\u0000${client}`} ${room}`;
    const until = this.cache.get(key);
    if (until !== undefined) {
      if (until > Date.now()) {
        this.metrics.proxyAnswered('subscribe', 'cached');
        return;
      }
      this.cache.delete(key);
    }
    const answer = await this.calls.post('subscribe', this.url, { user: identity.userId ?? null, client, room, claims: identity.claims ?? null });
    const decision = answer.status >= 200 && answer.status < 300 ? answer.body : undefined;
    if (decision?.allow === true) {
      this.metrics.proxyAnswered('subscribe', 'allow', answer.seconds);
      if (this.cacheMs > 0) this.remember(key);
      return;
    }
    if (decision?.allow !== false) this.calls.invalid('subscribe', answer);
    this.metrics.proxyAnswered('subscribe', 'deny', answer.seconds);
    const code = isErrorCode(decision.code) && decision.code !== 'internal' ? decision.code : 'forbidden';
    const message = typeof decision.message === 'string' && decision.message !== '' ? decision.message.slice(0, MESSAGE_MAX) : `Not allowed to subscribe to "${room}".`;
    throw new HeraldError(code, message);
  }

  private remember(key: string): void {
    this.cache.delete(key);
    if (this.cache.size >= CACHE_MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, Date.now() + this.cacheMs);
  }
}

/**
 * CONNECT_PROXY_URL: the backend admits handshakes that carry no JWT (session cookies). It
 * gets the cookie, authorization and origin headers, the handshake's `auth` and the client
 * address, and answers `200 {user, rooms?, publish?, expiresAt?}` (claims with a token's
 * meaning; `expiresAt` in seconds like `exp`), or 401/403 to refuse with `unauthorized`.
 */
export class ConnectProxy {
  constructor(
    private readonly url: URL,
    private readonly calls: BackendCalls,
    private readonly addressOf: (socket: Socket) => string,
    private readonly metrics: Metrics,
  ) {}

  async admit(socket: Socket): Promise<Identity> {
    const h = socket.handshake.headers;
    return this.admitRequest({ cookie: h.cookie, authorization: h.authorization, origin: h.origin }, socket.handshake.auth ?? {}, this.addressOf(socket));
  }

  /** `admit` for a request that is not a Socket.IO handshake (an event stream): its headers, no `auth` but what it carries. */
  async admitRequest(h: { cookie?: string | undefined; authorization?: string | undefined; origin?: string | undefined }, auth: Record<string, unknown>, address: string): Promise<Identity> {
    const answer = await this.calls.post('connect', this.url, {
      headers: { cookie: h.cookie ?? null, authorization: h.authorization ?? null, origin: h.origin ?? null },
      auth,
      address,
    });
    if (answer.status === 401 || answer.status === 403) {
      this.metrics.proxyAnswered('connect', 'deny', answer.seconds);
      throw new HeraldError('unauthorized', `The backend refused this session (${answer.status}); sign in again.`);
    }
    const a = answer.status === 200 ? answer.body : undefined;
    if (!a || typeof a.user !== 'string' || a.user === '' || (a.expiresAt !== undefined && typeof a.expiresAt !== 'number')) this.calls.invalid('connect', answer);
    const identity = identityFromClaims({ sub: a.user, exp: a.expiresAt as number | undefined, iat: undefined, jti: undefined, rooms: a.rooms, publish: a.publish, raw: a });
    this.metrics.proxyAnswered('connect', 'allow', answer.seconds);
    return identity;
  }
}

/** The proxies the configuration asks for, sharing one concurrency bound. */
export function createProxies(
  config: Pick<Config, 'subscribeProxyUrl' | 'connectProxyUrl' | 'proxyRooms' | 'proxyTimeoutMs' | 'proxyMaxConcurrency' | 'proxyCacheSeconds' | 'webhookSecret' | 'trustProxy'>,
  metrics: Metrics,
  logger: Logger,
): { subscribe: SubscribeProxy | undefined; connect: ConnectProxy | undefined } {
  const calls = new BackendCalls({ timeoutMs: config.proxyTimeoutMs, maxConcurrency: config.proxyMaxConcurrency, secret: config.webhookSecret, metrics, logger });
  const addressOf = (socket: Socket) => clientIp(socket.request, config.trustProxy);
  return {
    subscribe: config.subscribeProxyUrl && new SubscribeProxy(config.subscribeProxyUrl, config.proxyRooms, calls, config.proxyCacheSeconds * 1000, metrics),
    connect: config.connectProxyUrl && new ConnectProxy(config.connectProxyUrl, calls, addressOf, metrics),
  };
}
