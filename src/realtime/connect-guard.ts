import type { Namespace, Socket } from 'socket.io';
import type { Logger } from '../observability/logger.js';
import { throttle } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

/** A namespace middleware, as `Namespace.use` takes it. */
export type Middleware = (socket: Socket, next: (err?: Error) => void) => void;

/**
 * CONNECT attempts one Engine.IO connection may make per namespace over its life. A client
 * retries on the same connection only after a refusal it can fix (a fresh token), so a handful is
 * plenty; past it the connection is an attacker's loop and is closed.
 */
export const MAX_CONNECTS_PER_NAMESPACE = 5;

interface Claims {
  /** Namespaces with a session being authenticated or connected on this connection. */
  readonly held: Set<string>;
  /** CONNECT attempts per namespace so far. */
  readonly attempts: Map<string, number>;
}

/**
 * At most one Socket.IO session per namespace on one Engine.IO connection.
 *
 * Socket.IO turns every CONNECT packet into a new socket, so a single handshake (or one polling
 * POST holding thousands of `40` packets) could open thousands of sessions: each one costs
 * memory, an authentication (a bcrypt compare on the admin namespace), per-connection state, and
 * a presence entry, and the per-IP handshake limit never sees them. A CONNECT for a namespace
 * that already has a session on the connection (authenticating or connected), or one past
 * `MAX_CONNECTS_PER_NAMESPACE` attempts, is a protocol violation no real client commits:
 * the whole Engine.IO connection is closed.
 *
 * A session whose authentication failed, or that disconnected, frees the namespace again, so a
 * client may retry with a fresh token on the same connection (socket.io-client's
 * `socket.connect()` after a `connect_error`).
 */
export class ConnectGuard {
  private readonly claims = new WeakMap<object, Claims>();
  private readonly refusedLog = throttle(10_000);

  constructor(
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {}

  /**
   * Installs `authenticate` on `nsp` behind the guard: it runs only for a CONNECT the guard
   * admits, and its outcome decides whether the namespace stays claimed.
   */
  use(nsp: Namespace, authenticate: Middleware): void {
    nsp.use((socket, next) => {
      const release = this.claim(socket, nsp.name);
      // Socket.IO drops the session without a word once the connection is closed.
      if (!release) return next(new Error('duplicate_connect'));
      authenticate(socket, (err) => {
        if (err) release();
        else socket.once('disconnect', release);
        next(err);
      });
    });
  }

  /** Claims `namespace` on the socket's connection; undefined (and the connection closed) if it may not. */
  private claim(socket: Socket, namespace: string): (() => void) | undefined {
    const conn = socket.conn;
    let claims = this.claims.get(conn);
    if (!claims) this.claims.set(conn, (claims = { held: new Set(), attempts: new Map() }));
    const attempts = (claims.attempts.get(namespace) ?? 0) + 1;
    claims.attempts.set(namespace, attempts);
    if (claims.held.has(namespace) || attempts > MAX_CONNECTS_PER_NAMESPACE) {
      this.metrics.authFailed('duplicate_connect');
      if (this.refusedLog.due()) {
        this.logger.warn({ namespace, attempts, address: socket.handshake.address }, 'closed a connection that sent a second CONNECT for one namespace');
      }
      // Later packets of the same batch are still parsed; a closed connection ignores them.
      conn.close();
      return undefined;
    }
    claims.held.add(namespace);
    let held = true;
    return () => {
      if (held) claims.held.delete(namespace);
      held = false;
    };
  }
}
