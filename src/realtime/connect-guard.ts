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

/**
 * What the guard keeps per connection, from its first CONNECT: most connections only ever open
 * the main namespace, which is kept inline; others (the admin namespace) get a small map.
 */
interface Claims {
  /** The client address, for the log of a refused CONNECT. */
  readonly address: string;
  /** The first namespace a CONNECT was for. */
  readonly first: string;
  /** CONNECT attempts for `first` so far × 2, + 1 while a session (authenticating or connected) holds it. */
  firstState: number;
  /** The same for other namespaces. */
  others: Map<string, number> | undefined;
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
  /** By Engine.IO connection; one exists from the connection's first CONNECT on. */
  private readonly claims = new WeakMap<object, Claims>();
  /** Sockets the guard admitted, with the claims that hold their namespace until they go. */
  private readonly admitted = new WeakMap<Socket, Claims>();
  private readonly guarded = new WeakSet<Namespace>();
  /** Socket.IO's `Client._parseNamespace`, as the first connection had it. */
  private parse: Client['_parseNamespace'] | undefined;
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
      let claims = this.claims.get(client.conn);
      if (!claims) {
        this.claims.set(client.conn, (claims = { address, first: nsp.name, firstState: 0, others: undefined, restored: false }));
        this.countReconnects(client);
      }
      if (!this.claim(client.conn, claims, nsp.name, address)) return create(client, withoutSession(auth));
      try {
        const socket = await create(client, this.mayRestore(claims, auth, address) ? auth : withoutSession(auth));
        this.admitted.set(socket, claims);
        return socket;
      } catch (err) {
        setHeld(claims, nsp.name, false);
        throw err;
      }
    };
    const guard = this;
    // One listener for every admitted socket (not `once`, whose wrapper would be one more object
    // per socket; `release` runs once anyway): `this` is the socket that went.
    const disconnected = function (this: Socket) {
      guard.release(this);
    };
    internals.run = (socket, fn) =>
      run(socket, (err) => {
        if (this.admitted.has(socket)) {
          if (err) this.release(socket);
          else socket.on('disconnect', disconnected);
        }
        fn(err);
      });
  }

  /** Frees the namespace `socket` held (once: its session was refused, or it disconnected). */
  private release(socket: Socket): void {
    const claims = this.admitted.get(socket);
    if (!claims) return;
    this.admitted.delete(socket);
    setHeld(claims, socket.nsp.name, false);
  }

  /** Whether a CONNECT may look its session up: once per connection, within the address's budget. */
  private mayRestore(claims: Claims, auth: Record<string, unknown> | undefined, address: string): boolean {
    if (typeof auth?.pid !== 'string') return true;
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
  private countReconnects(client: Client): void {
    const parse = client._parseNamespace;
    // Another Socket.IO than 4.8's: Socket.IO still closes such a connection; it is not counted.
    if (typeof parse !== 'function') return;
    this.parse ??= parse;
    // Socket.IO's own method, the same for every connection: one shared wrapper, which finds the
    // connection's address in its claims (no closure per connection).
    if (parse === this.parse) {
      client._parseNamespace = this.countingParse;
      return;
    }
    client._parseNamespace = (packet) => this.counted(client, packet, parse.call(client, packet));
  }

  /** `Client._parseNamespace` behind the count; `this` is the client. */
  private readonly countingParse = (() => {
    const guard = this;
    return function countingParse(this: Client, packet: { type: number }): { namespace: string } {
      return guard.counted(this, packet, guard.parse!.call(this, packet));
    };
  })();

  private counted(client: Client, packet: { type: number }, parsed: { namespace: string }): { namespace: string } {
    if (packet.type === CONNECT && client.nsps.has(parsed.namespace)) this.refused(parsed.namespace, undefined, this.claims.get(client.conn)?.address ?? client.conn.remoteAddress);
    return parsed;
  }

  /** A second CONNECT for one namespace: counted (`duplicate_connect`) and logged, throttled. */
  private refused(namespace: string, attempts: number | undefined, address: string): void {
    this.metrics.authFailed('duplicate_connect');
    if (this.refusedLog.due()) {
      this.logger.warn({ namespace, attempts, address }, 'closed a connection that sent a second CONNECT for one namespace');
    }
  }

  /** Claims `namespace` on `conn`; false (and the connection closed) if it may not. */
  private claim(conn: Client['conn'], claims: Claims, namespace: string, address: string): boolean {
    const state = stateOf(claims, namespace) + 2;
    setState(claims, namespace, state);
    const attempts = state >> 1;
    if (state & 1 || attempts > MAX_CONNECTS_PER_NAMESPACE) {
      this.refused(namespace, attempts, address);
      // Later packets of the same batch are still parsed; a closed connection ignores them.
      conn.close();
      return false;
    }
    setHeld(claims, namespace, true);
    return true;
  }
}

function stateOf(claims: Claims, namespace: string): number {
  return namespace === claims.first ? claims.firstState : (claims.others?.get(namespace) ?? 0);
}

function setState(claims: Claims, namespace: string, state: number): void {
  if (namespace === claims.first) claims.firstState = state;
  else (claims.others ??= new Map()).set(namespace, state);
}

function setHeld(claims: Claims, namespace: string, held: boolean): void {
  const state = stateOf(claims, namespace);
  setState(claims, namespace, held ? state | 1 : state & ~1);
}

/** The CONNECT's auth without what makes Socket.IO look a session up. */
function withoutSession(auth: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!auth || typeof auth !== 'object') return {};
  const { pid: _pid, offset: _offset, ...rest } = auth;
  return rest;
}
