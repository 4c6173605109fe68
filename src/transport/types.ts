import type { Server } from 'socket.io';
import type { TransportKind, WsCompression } from '../config/schema.js';
import type { LocalDelivery } from '../cluster/adapter.js';
import type { HttpService } from './http.js';

export interface TransportOptions {
  readonly host: string;
  /** 0 picks a free port; `RunningTransport.port` tells which. */
  readonly port: number;
  readonly io: Server;
  readonly http: HttpService;
  /** uWS only: how long a busy replica may hold room publishes to batch them (`BROADCAST_BATCH_MS`). */
  readonly broadcastBatchMs: number;
  /** Where herald's adapter delivers; the uWS transport sets its fast path here. */
  readonly delivery: { current: LocalDelivery | undefined };
  /**
   * Negotiate permessage-deflate with WebSocket clients that offer it (`WS_COMPRESSION`):
   * `shared` deflates each message on its own, `context` keeps a window per connection. @default false
   */
  readonly compression?: WsCompression;
  /** MAX_CONNECTIONS and, on uWS, the descriptor backstop (admission.ts, accept-guard.ts). Unset: neither. */
  readonly admission?: TransportAdmission;
}

/** How a transport admits connections, and whom it tells when it refuses or stops accepting. */
export interface TransportAdmission {
  /**
   * Why a new connection would be refused now, given how many Engine.IO connections there are:
   * `capacity` when they and the other connections (event streams) reach MAX_CONNECTIONS,
   * `overloaded` while the event loop is behind (HANDSHAKE_MAX_LAG_MS). Undefined when neither
   * is configured. Socket.IO handshakes (admission.ts) and event streams ask the same.
   */
  readonly refusal: ((engineConnections: number) => RefusalReason | undefined) | undefined;
  /** The soft descriptor limit (RLIMIT_NOFILE); undefined: no backstop. */
  readonly descriptorLimit: number | undefined;
  /** A handshake was refused with 503 `over_capacity` or `overloaded`. */
  refused(reason: RefusalReason): void;
  /** The listen socket was closed with `open` descriptors in use, or opened again, or could not be. */
  acceptPaused(open: number): void;
  acceptResumed(open: number): void;
  acceptResumeFailed(open: number): void;
  /** Stops watching the event loop. */
  close(): void;
}

/** Why a handshake was refused: MAX_CONNECTIONS reached, or the event loop behind (HANDSHAKE_MAX_LAG_MS). */
export type RefusalReason = 'capacity' | 'overloaded';

/** The error code a refused client is told, by reason (the metric's label is the reason). */
export const REFUSAL_CODES = { capacity: 'over_capacity', overloaded: 'overloaded' } as const satisfies Record<RefusalReason, string>;

/**
 * With compression on, messages shorter than this go out uncompressed: deflate saves little
 * below it (a 128-byte Socket.IO frame shrinks to about 83 %, a 64-byte one to 98 %) and costs
 * as much CPU as on a larger one. Engine.IO's own default, 1024, would leave a score update of a
 * few hundred bytes uncompressed.
 */
export const COMPRESSION_THRESHOLD_BYTES = 128;

export interface RunningTransport {
  readonly kind: TransportKind;
  readonly port: number;
  /** Stops accepting TCP connections; existing ones are closed by `io.close()`. */
  stopListening(): void;
}
