import type { Server, Socket } from 'socket.io';
import { ANONYMOUS, identityFromClaims, identityOf, setIdentity, userRoom, type Identity } from '../auth/identity.js';
import { grantedRooms, type AccessPolicy } from '../auth/access.js';
import { isDeltaRoom } from '../protocol/rooms.js';
import type { TokenVerifier } from '../auth/jwt.js';
import type { ConnectProxy } from '../auth/proxy.js';
import { HeraldError, toHeraldError, type ErrorBody } from '../errors.js';
import { DISCONNECT_EVENT, TOKEN_EXPIRING_EVENT } from '../protocol/events.js';
import { answer } from './ack.js';
import type { ConnectGuard } from './connect-guard.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

/** `herald:token_expiring` is sent this long before a token expires (or at once if it expires sooner). */
export const EXPIRY_NOTICE_MS = 60_000;
/** setTimeout's limit; longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface SessionDeps {
  verifier: TokenVerifier | undefined;
  /** The clock-skew allowance verification applied: a token is honoured until `exp` plus this. */
  clockSkewMs: number;
  policy: AccessPolicy;
  allowAnonymous: boolean;
  logger: Logger;
  metrics: Metrics;
  /** One session per connection: authentication runs behind it. */
  connects: ConnectGuard;
  /** CONNECT_PROXY_URL: decides the handshakes that carry no token. */
  connectProxy?: ConnectProxy;
}

/**
 * Connection authentication and token lifetime:
 * - handshake `auth: {token}` is verified; refusals reach the client as `connect_error` with
 *   `err.data.code` (`unauthorized`, `token_expired`);
 * - an authenticated connection joins `user:<sub>`;
 * - expiry is `exp` plus the clock-skew allowance (the same one verification applied);
 * - `herald:token_expiring` `{expiresIn}` (seconds) is sent a minute before expiry; at expiry the client gets
 *   `herald:disconnect` `{code: "token_expired"}` and is disconnected, unless it sent a fresh token
 *   with `refresh` (ack `{ok, exp, expiresAt, removed}`: seconds, milliseconds); rooms the new token no longer allows are left.
 *
 * Only connections whose token expires have a timer; the rest cost nothing here.
 */
export class Sessions {
  private readonly timers = new Map<Socket, NodeJS.Timeout>();

  constructor(
    io: Server,
    private readonly deps: SessionDeps,
  ) {
    deps.connects.use(io.of('/'), (socket, next) => {
      authenticate(socket, deps).then(
        (identity) => {
          setIdentity(socket, identity);
          next();
        },
        (err: unknown) => {
          const herr = toHeraldError(err);
          deps.metrics.authFailed(herr.code);
          next(Object.assign(new Error(herr.message), { data: herr.toBody() }));
        },
      );
    });
  }

  /** A connection was established: its user room, and its expiry timer if the token expires. */
  opened(socket: Socket): void {
    const identity = identityOf(socket);
    if (identity.userId !== undefined) void socket.join(userRoom(identity.userId));
    this.arm(socket, identity);
  }

  closed(socket: Socket): void {
    clearTimeout(this.timers.get(socket));
    this.timers.delete(socket);
  }

  /**
   * The `refresh` event: a fresh token for the same user. Rooms the new token no longer allows are
   * left through `leave`, the same path as an unsubscribe, so nothing of them arrives after the ack.
   */
  refresh(socket: Socket, arg: unknown, ack: unknown, leave: LeaveRoom): void {
    const token = typeof arg === 'object' && arg !== null ? (arg as { token?: unknown }).token : arg;
    answer(ack, async () => {
      const result = await refresh(socket, token, this.deps, leave);
      if (socket.connected) this.arm(socket, identityOf(socket));
      return result;
    });
  }

  private arm(socket: Socket, identity: Identity): void {
    this.closed(socket);
    if (identity.expiresAt === undefined) return;
    this.step(socket);
  }

  /**
   * One timer per connection whose token expires, all calling this one function with their socket
   * (no closure per connection): the deadline is read from the socket's identity each time, and a
   * `refresh` re-arms through `arm`.
   */
  private readonly step = (socket: Socket): void => {
    const expiresAt = identityOf(socket).expiresAt;
    if (expiresAt === undefined) return void this.timers.delete(socket);
    const deadline = expiresAt + this.deps.clockSkewMs;
    const notifyAt = deadline - EXPIRY_NOTICE_MS;
    const now = Date.now();
    if (now >= deadline) {
      this.timers.delete(socket);
      const body: ErrorBody = new HeraldError('token_expired').toBody();
      socket.emit(DISCONNECT_EVENT, body);
      socket.disconnect(true);
      return;
    }
    if (now >= notifyAt) socket.emit(TOKEN_EXPIRING_EVENT, { expiresIn: Math.ceil((deadline - now) / 1000) });
    this.timers.set(socket, setTimeout(this.step, Math.min(MAX_TIMER_MS, (now >= notifyAt ? deadline : notifyAt) - now), socket));
  };
}

async function authenticate(socket: Socket, deps: SessionDeps): Promise<Identity> {
  const token = (socket.handshake.auth as Record<string, unknown> | undefined)?.token;
  if (token === undefined || token === null || token === '' || !deps.verifier) {
    if (deps.connectProxy) return deps.connectProxy.admit(socket);
    if (!deps.allowAnonymous) throw new HeraldError('unauthorized', 'A token is required: connect with auth: {token}.');
    return ANONYMOUS;
  }
  return identityFromClaims(await deps.verifier.verify(token));
}

/** Takes a socket out of a room and out of everything herald keeps for it there. */
export type LeaveRoom = (socket: Socket, room: string) => Promise<void>;

/**
 * The `refresh` ack's body. `exp` is the new token's claim, in seconds since the epoch like every
 * token time herald reads (`exp`, `iat`, the connect proxy's and /v1/revoke's `expiresAt`);
 * `expiresAt` is the same moment in milliseconds, as the ack has always carried it.
 */
interface Refreshed {
  exp: number | undefined;
  expiresAt: number | undefined;
  removed: string[];
}

async function refresh(socket: Socket, token: unknown, deps: SessionDeps, leave: LeaveRoom): Promise<Refreshed> {
  if (!deps.verifier) throw new HeraldError('bad_request', 'No token verification is configured; there is nothing to refresh.');
  const current = identityOf(socket);
  const claims = await deps.verifier.verify(token);
  const next = identityFromClaims(claims);
  if (next.userId !== current.userId) throw new HeraldError('forbidden', 'A refreshed token must be for the same user ("sub").');
  setIdentity(socket, next);
  const removed: string[] = [];
  for (const room of [...socket.rooms]) {
    // Rooms the backend granted (the subscribe proxy, POST /v1/subscribe) stay: it decided for this user, and it is the same user.
    if (room === socket.id || isDeltaRoom(room) || deps.policy.canSubscribe(next, room) || grantedRooms(socket).has(room)) continue;
    removed.push(room);
    await leave(socket, room);
  }
  return { exp: claims.exp, expiresAt: next.expiresAt, removed };
}
