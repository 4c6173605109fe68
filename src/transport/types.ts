import type { Server } from 'socket.io';
import type { TransportKind } from '../config/schema.js';
import type { HttpService } from './http.js';

export interface TransportOptions {
  readonly host: string;
  /** 0 picks a free port; `RunningTransport.port` tells which. */
  readonly port: number;
  readonly io: Server;
  readonly http: HttpService;
  /** uWS only: how long a busy replica may hold room publishes to batch them (`BROADCAST_BATCH_MS`). */
  readonly broadcastBatchMs: number;
}

export interface RunningTransport {
  readonly kind: TransportKind;
  readonly port: number;
  /** Stops accepting TCP connections; existing ones are closed by `io.close()`. */
  stopListening(): void;
}
