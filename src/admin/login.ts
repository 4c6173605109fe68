import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Namespace, Socket } from 'socket.io';
import { HeraldError } from '../errors.js';
import { clientAddress, type TrustedProxies } from '../limits/client-ip.js';
import { KeyedLimiter, TokenBucket } from '../limits/token-bucket.js';
import { throttle, type Logger } from '../observability/logger.js';
import { PasswordChecker } from './password-check.js';
import type { ConnectGuard } from '../realtime/connect-guard.js';

/** The namespace `@socket.io/admin-ui` serves and its UI connects to. */
export const ADMIN_NAMESPACE = '/admin';
/**
 * Password checks waiting for the worker, from all addresses together; beyond it a login is
 * refused as `rate_limited` at once. At ~100 ms each (cost 10) the last waits under 2 s.
 */
const MAX_QUEUED_CHECKS = 16;
/** How long a session id from a successful login replaces the password (admin-ui's RedisStore default). */
const SESSION_TTL_MS = 24 * 3600 * 1000;
/** Sessions kept per replica; the oldest is forgotten past this. */
const MAX_SESSIONS = 1000;
/** A refused login is logged at most this often. */
const LOG_INTERVAL_MS = 10_000;

export interface AdminLoginOptions {
  username: string;
  /** bcrypt hash of the password. */
  passwordHash: string;
  /** Password attempts per minute from one client address. */
  attemptsPerIpPerMinute: number;
  /** Password attempts per minute on one Engine.IO connection. */
  attemptsPerConnectionPerMinute: number;
  /** TRUST_PROXY: which X-Forwarded-For entry is the client address. */
  trustedProxies: TrustedProxies;
  /** One session per connection: the login runs behind it, so a batch of CONNECTs closes the connection. */
  connects: ConnectGuard;
  logger: Logger;
}

/**
 * The admin UI's login, in place of `@socket.io/admin-ui`'s basic auth (install it before
 * `instrument(io, {auth: false})`), which runs bcrypt on the event loop for every CONNECT packet
 * with no limit: 300 guesses in one polling POST held a replica for 25 s.
 *
 * - A handshake `auth: {username, password}` is a password attempt. Each client address may
 *   make `attemptsPerIpPerMinute` of them, and each Engine.IO connection (which can carry any
 *   number of CONNECT packets) `attemptsPerConnectionPerMinute`, as token buckets refilling over
 *   the minute. Over either, and while `MAX_QUEUED_CHECKS` checks wait, the attempt is refused at
 *   once with `connect_error` `{code: "rate_limited"}` and no bcrypt work.
 * - bcrypt runs on a worker thread (`PasswordChecker`); the username is compared in constant time
 *   and the password is checked whatever the username, so timing tells nothing about either.
 *   A wrong pair gets `{code: "unauthorized"}`.
 * - As with admin-ui's own auth, a successful login receives `session` with an id the UI sends
 *   (`auth: {sessionId}`) when it reconnects; a known id skips the password. Sessions live in
 *   this replica's memory for a day.
 */
export function installAdminLogin(nsp: Namespace, opts: AdminLoginOptions): void {
  const perMinute = (n: number) => ({ rate: n / 60, burst: n });
  const ip = perMinute(opts.attemptsPerIpPerMinute);
  const conn = perMinute(opts.attemptsPerConnectionPerMinute);
  const byAddress = new KeyedLimiter(ip.rate, ip.burst);
  const byConnection = new WeakMap<object, TokenBucket>();
  const checker = new PasswordChecker(opts.passwordHash);
  const sessions = new Map<string, number>();
  const expectedUser = digest(opts.username);
  const refusalLog = throttle(LOG_INTERVAL_MS);

  const refuse = (next: (err?: Error) => void, err: HeraldError, address: string) => {
    if (refusalLog.due()) opts.logger.warn({ address, code: err.code }, 'admin UI login refused');
    next(Object.assign(new Error(err.message), { data: err.toBody() }));
  };

  opts.connects.use(nsp, (socket, next) => {
    const auth = (socket.handshake.auth ?? {}) as { sessionId?: unknown; username?: unknown; password?: unknown };
    if (typeof auth.sessionId === 'string' && hasSession(sessions, auth.sessionId)) return next();
    const address = clientAddress(socket.handshake.headers['x-forwarded-for'], socket.handshake.address, opts.trustedProxies);
    if (typeof auth.username !== 'string' || typeof auth.password !== 'string') {
      return refuse(next, new HeraldError('unauthorized', 'Log in with the admin UI username and password.'), address);
    }
    let bucket = byConnection.get(socket.conn);
    if (!bucket) byConnection.set(socket.conn, (bucket = new TokenBucket(conn.rate, conn.burst, Date.now())));
    // A full queue refuses without spending budgets; a connection over its own budget does not
    // spend its address's.
    if (checker.inFlight >= MAX_QUEUED_CHECKS || !bucket.take(Date.now()) || !byAddress.take(address)) {
      return refuse(next, new HeraldError('rate_limited', 'Too many admin UI login attempts; wait a minute and try again.'), address);
    }
    const userMatches = timingSafeEqual(digest(auth.username), expectedUser);
    checker.check(auth.password).then(
      (passwordMatches) => {
        opts.logger.debug({ address, match: userMatches && passwordMatches }, 'admin UI password checked');
        if (!(userMatches && passwordMatches)) {
          return refuse(next, new HeraldError('unauthorized', 'Wrong admin UI username or password.'), address);
        }
        (socket.data as { adminSession?: string }).adminSession = openSession(sessions);
        next();
      },
      (err: unknown) => {
        opts.logger.error({ err }, 'admin UI password check failed');
        next(Object.assign(new Error('The password could not be checked; try again.'), { data: new HeraldError('internal').toBody() }));
      },
    );
  });
  nsp.on('connection', (socket: Socket) => {
    const data = socket.data as { adminSession?: string };
    if (data.adminSession === undefined) return;
    socket.emit('session', data.adminSession);
    delete data.adminSession;
  });
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function hasSession(sessions: Map<string, number>, id: string): boolean {
  const expires = sessions.get(id);
  if (expires === undefined) return false;
  if (expires > Date.now()) return true;
  sessions.delete(id);
  return false;
}

function openSession(sessions: Map<string, number>): string {
  const id = randomBytes(16).toString('hex');
  sessions.set(id, Date.now() + SESSION_TTL_MS);
  // Maps iterate in insertion order: the first key is the oldest session.
  if (sessions.size > MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
  return id;
}
