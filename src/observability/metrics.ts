/**
 * What herald counts, named as domain verbs so transports and services never touch a metrics
 * library. This in-process implementation backs `/readyz`'s body; a Prometheus one can replace it
 * behind the same interface.
 */
export interface Metrics {
  connectionOpened(): void;
  connectionClosed(): void;
  /** One publish accepted for `rooms` rooms. */
  published(rooms: number): void;
  /** A message could not be handed to Redis; local subscribers still got it. */
  busPublishFailed(): void;
  /** A connection was refused authentication, by error code. */
  authFailed(code: string): void;
  snapshot(): MetricsSnapshot;
}

export interface MetricsSnapshot {
  connections: number;
  connectionsTotal: number;
  published: number;
  busPublishFailures: number;
  authFailures: Record<string, number>;
}

export function createMetrics(): Metrics {
  const s: MetricsSnapshot = { connections: 0, connectionsTotal: 0, published: 0, busPublishFailures: 0, authFailures: {} };
  return {
    connectionOpened() {
      s.connections++;
      s.connectionsTotal++;
    },
    connectionClosed() {
      s.connections--;
    },
    published(rooms) {
      s.published += rooms;
    },
    busPublishFailed() {
      s.busPublishFailures++;
    },
    authFailed(code) {
      s.authFailures[code] = (s.authFailures[code] ?? 0) + 1;
    },
    snapshot: () => ({ ...s, authFailures: { ...s.authFailures } }),
  };
}
