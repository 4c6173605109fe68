import type { Namespace, Socket } from 'socket.io';
import { clientAddress, type TrustedProxies } from '../limits/client-ip.js';
import { KeyedLimiter } from '../limits/token-bucket.js';
import type { Logger } from '../observability/logger.js';
import { throttle } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

/** Socket.IO's CONNECT packet type (socket.io-parser's PacketType.CONNECT). */
const CONNECT = 0;

/** A namespace middleware, as `Namespace.use` takes it. */
export type Middleware = (socket: Socket, next: (err?: Error) => void) => void;

/**
 * CONNECT attempts one Engine.IO connection may make per namespace over its life. A client
 * retries on the same connection only after a refusal it can fix (a fresh token), so a handful is
 * plenty; past it the connection is an attacker's loop and is closed.
 */
export const MAX_CONNECTS_PER_NAMESPACE = 5;

export interface ConnectGuardOptions {
  /** Session restores (CONNECTs with a recovery `pid`) one client address may start per minute: RECOVERY_RESTORES_PER_IP. */
  restoresPerMinute: number;
  /** TRUST_PROXY: which X-Forwarded-For entry is the client address. */
  trustProxy: TrustedProxies;
}

interface Claims {
  /** Namespaces with a session being authenticated or connected on this connection. */
  readonly held: Set<string>;
  /** CONNECT attempts per namespace so far. */
  readonly attempts: Map<string, number>;
  /** A session restore was started on this connection. */
  restored: boolean;
}

/** What of Socket.IO's `Namespace` (socket.io 4.8 dist/namespace.js) the guard wraps. */
interface NamespaceInternals {
  _createSocket(client: Client, auth: Record<string, unknown>): Promise<Socket>;
  run(socket: Socket, fn: (err?: Error) => void): void;
}
/** What of Socket.IO's `Client` (socket.io 4.8 dist/client.js) the guard reads and wraps. */
interface Client {
  conn: { close(): void; remoteAddress: string };
  request?: { headers?: Record<string, string | string[] | undefined> };
  /** The connection's sessions, by namespace. */
  nsps: Map<string, unknown>;
  /** Called by `ondecoded` for every packet the connection sends, before it acts on it. */
  _parseNamespace(packet: { type: number }): { namespace: string };
}

/**
 * At most one Socket.IO session per namespace on one Engine.IO connection, decided before
 * Socket.IO does any work for a CONNECT.
 *
 * Socket.IO turns every CONNECT packet into a new socket, so a single handshake (or one polling
 * POST holding thousands of `40` packets) could open thousands of sessions: each one costs
 * memory, an authentication (a bcrypt compare on the admin namespace), a session lookup when it
 * carries a recovery `pid` (Socket.IO's `restoreSession` runs before any middleware), per-
 * connection state and a presence entry, and the per-IP handshake limit never sees them. A
 * CONNECT for a namespace that already has a session on the connection (authenticating or
 * connected), or one past `MAX_CONNECTS_PER_NAMESPACE` attempts, is a protocol violation no real
 * client commits: the whole Engine.IO connection is closed, before any lookup.
 *
 * A connection may start one session restore in its life, and a client address
 * `restoresPerMinute`; past either, the CONNECT goes on without its `pid`: a fresh session
 * (`recovered: false`), and the stored session stays for its owner.
 *
 * A session whose authentication failed, or that disconnected, frees the namespace again, so a
 * client may retry with a fresh token on the same connection (socket.io-client's
 * `socket.connect()` after a `connect_error`).
 */
export class ConnectGuard {
  private readonly claims = new WeakMap<object, Claims>();
  /** Sockets the guard admitted, with what frees their namespace again. */
  private readonly admitted = new WeakMap<Socket, () => void>();
  private readonly guarded = new WeakSet<Namespace>();
  /** Connections whose packets are watched for a CONNECT after their session was made. */
  private readonly watched = new WeakSet<Client>();
  private readonly restores: KeyedLimiter;
  private readonly refusedLog = throttle(10_000);

  constructor(
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly opts: ConnectGuardOptions,
  ) {
    this.restores = new KeyedLimiter(opts.restoresPerMinute / 60, opts.restoresPerMinute);
  }

  /** Installs `authenticate` on `nsp` behind the guard: it runs only for a CONNECT the guard admits. */
  use(nsp: Namespace, authenticate: Middleware): void {
    this.guard(nsp);
    nsp.use((socket, next) => {
      // Socket.IO drops the session without a word once the connection is closed.
      if (!this.admitted.has(socket)) return next(new Error('duplicate_connect'));
      authenticate(socket, next);
    });
  }

  /**
   * Wraps the namespace's `_createSocket` (where the session lookup happens) to claim it first,
   * and `run` (its middlewares) to free the claim when they refuse or once the socket disconnects.
   */
  private guard(nsp: Namespace): void {
    if (this.guarded.has(nsp)) return;
    this.guarded.add(nsp);
    const internals = nsp as unknown as NamespaceInternals;
    const create = internals._createSocket.bind(nsp);
    const run = internals.run.bind(nsp);
    internals._createSocket = async (client, auth) => {
      const address = clientAddress(client.request?.headers?.['x-forwarded-for'], client.conn.remoteAddress, this.opts.trustProxy);
      this.countReconnects(client, address);
      const release = this.claim(client.conn, nsp.name, address);
      if (!release) return create(client, withoutSession(auth));
      try {
        const socket = await create(client, this.mayRestore(client.conn, auth, address) ? auth : withoutSession(auth));
        this.admitted.set(socket, release);
        return socket;
      } catch (err) {
        release();
        throw err;
      }
    };
    internals.run = (socket, fn) =>
      run(socket, (err) => {
        const release = this.admitted.get(socket);
        if (release && err) release();
        else if (release) socket.once('disconnect', release);
        fn(err);
      });
  }

  /** Whether a CONNECT may look its session up: once per connection, within the address's budget. */
  private mayRestore(conn: object, auth: Record<string, unknown> | undefined, address: string): boolean {
    if (typeof auth?.pid !== 'string') return true;
    const claims = this.claims.get(conn)!;
    const allowed = !claims.restored && this.restores.take(address);
    claims.restored = true;
    if (!allowed) this.metrics.sessionRecovery('rate_limited');
    return allowed;
  }

  /**
   * A CONNECT for a namespace whose session is already made never reaches the claim: Socket.IO
   * closes the connection itself ("invalid state" in `Client.ondecoded`), as when the rest of a
   * burst of CONNECTs arrives after the first one's session was made. It is counted here, where
   * Socket.IO reads each packet's namespace, before it closes. Installed on the connection's
   * first CONNECT (synchronously, before any later packet is read), once per connection.
   */
  private countReconnects(client: Client, address: string): void {
    if (this.watched.has(client)) return;
    this.watched.add(client);
    const parse = client._parseNamespace;
    // Another Socket.IO than 4.8's: Socket.IO still closes such a connection; it is not counted.
    if (typeof parse !== 'function') return;
    client._parseNamespace = (packet) => {
      const parsed = parse.call(client, packet);
      if (packet.type === CONNECT && client.nsps.has(parsed.namespace)) this.refused(parsed.namespace, undefined, address);
      return parsed;
    };
  }

  /** A second CONNECT for one namespace: counted (`duplicate_connect`) and logged, throttled. */
  private refused(namespace: string, attempts: number | undefined, address: string): void {
    this.metrics.authFailed('duplicate_connect');
    if (this.refusedLog.due()) {
      this.logger.warn({ namespace, attempts, address }, 'closed a connection that sent a second CONNECT for one namespace');
    }
  }

  /** Claims `namespace` on `conn`; undefined (and the connection closed) if it may not. */
  private claim(conn: Client['conn'], namespace: string, address: string): (() => void) | undefined {
    let claims = this.claims.get(conn);
    if (!claims) this.claims.set(conn, (claims = { held: new Set(), attempts: new Map(), restored: false }));
    const attempts = (claims.attempts.get(namespace) ?? 0) + 1;
    claims.attempts.set(namespace, attempts);
    if (claims.held.has(namespace) || attempts > MAX_CONNECTS_PER_NAMESPACE) {
      this.refused(namespace, attempts, address);
      // Later packets of the same batch are still parsed; a closed connection ignores them.
      conn.close();
      return undefined;
    }
    const held = claims.held;
    held.add(namespace);
    let holding = true;
    return () => {
      if (holding) held.delete(namespace);
      holding = false;
    };
  }
}

/** The CONNECT's auth without what makes Socket.IO look a session up. */
function withoutSession(auth: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!auth || typeof auth !== 'object') return {};
  const { pid: _pid, offset: _offset, ...rest } = auth;
  return rest;
}
