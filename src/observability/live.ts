import { Counter, Gauge, type Registry } from 'prom-client';

/** State read at scrape time rather than counted on the hot path. */
export interface LiveState {
  connectionsByTransport(): Record<string, number>;
  /** All of them, without walking them (the status page's number, every 2 s). */
  connections(): number;
  rooms(): number;
  subscriptions(): number;
  redisUp(): number | undefined;
  phase(): string;
  maxOutboundBytes(): number;
  /** Messages this replica received from Redis; undefined without Redis. */
  redisMessagesReceived(): number | undefined;
}

const PHASES = ['starting', 'ready', 'draining', 'stopped'];

/** The gauges `GET /metrics` reads from `live` at every scrape (connections, rooms, Redis, phase, buffers). */
export function registerLiveGauges(registry: Registry, live: LiveState): void {
  new Gauge({
    name: 'herald_connections',
    help: 'Open connections, by transport',
    labelNames: ['transport'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [t, n] of Object.entries(live.connectionsByTransport())) this.set({ transport: t }, n);
    },
  });
  new Gauge({ name: 'herald_rooms', help: 'Rooms with at least one local member', registers: [registry], collect() { this.set(live.rooms()); } });
  new Gauge({ name: 'herald_subscriptions', help: 'Local room memberships (socket-id rooms excluded)', registers: [registry], collect() { this.set(live.subscriptions()); } });
  new Gauge({
    name: 'herald_redis_up',
    help: '1 when the configured Redis is usable, 0 when not (absent without Redis)',
    registers: [registry],
    collect() {
      this.reset();
      const up = live.redisUp();
      if (up !== undefined) this.set(up);
    },
  });
  new Gauge({
    name: 'herald_lifecycle_phase',
    help: '1 for the current phase (starting, ready, draining, stopped)',
    labelNames: ['phase'],
    registers: [registry],
    collect() {
      for (const p of PHASES) this.set({ phase: p }, live.phase() === p ? 1 : 0);
    },
  });
  new Counter({
    name: 'herald_redis_messages_received_total',
    help: 'Pub/sub messages this replica received from Redis (classic: every broadcast; sharded: only its rooms)',
    registers: [registry],
    collect() {
      const n = live.redisMessagesReceived();
      if (n !== undefined) {
        this.reset();
        this.inc(n);
      }
    },
  });
  new Gauge({
    name: 'herald_outbound_buffer_max_bytes',
    help: 'Largest outbound buffer of any local connection at the last check',
    registers: [registry],
    collect() {
      this.set(live.maxOutboundBytes());
    },
  });
}

/** `herald_http_requests_in_flight`: HTTP requests handed to a route and not answered yet. */
export function registerRequestGauge(registry: Registry, http: { readonly inFlight: number }): void {
  new Gauge({
    name: 'herald_http_requests_in_flight',
    help: 'HTTP requests handed to a route (publish, history, control, ...) and not answered yet',
    registers: [registry],
    collect() {
      this.set(http.inFlight);
    },
  });
}
