import type { Bus } from '../cluster/bus.js';
import type { Lifecycle } from './lifecycle.js';
import type { Route } from '../http/route.js';
import type { Metrics } from '../observability/metrics.js';

/**
 * `/healthz`: the process is alive (200 until it exits).
 * `/readyz`: 200 only while this replica should get new clients: not draining, and the configured
 * Redis reachable (a replica cut off from Redis would serve rooms that miss other replicas' messages;
 * a silent partition is noticed within REDIS_TIMEOUT_SECONDS, see src/cluster/link.ts).
 */
export function healthRoutes(deps: { lifecycle: Lifecycle; bus: Bus; metrics: Metrics; replicaId: string }): Route[] {
  const { lifecycle, bus, metrics, replicaId } = deps;
  return [
    {
      method: 'GET',
      path: '/healthz',
      handle: () => ({ status: 200, body: { status: 'ok', replica: replicaId } }),
    },
    {
      method: 'GET',
      path: '/readyz',
      handle() {
        const redis = bus.kind === 'memory' ? 'none' : bus.isReady() ? 'up' : 'down';
        const status =
          lifecycle.phase !== 'ready' ? lifecycle.phase : redis === 'down' ? 'redis_unavailable' : 'ready';
        const since = bus.reachability.downSince;
        return {
          status: status === 'ready' ? 200 : 503,
          body: {
            status,
            replica: replicaId,
            redis,
            ...(redis === 'down' && since !== undefined ? { redisDownSeconds: Math.round((Date.now() - since) / 1000) } : {}),
            ...metrics.snapshot(),
            heapUsedBytes: process.memoryUsage().heapUsed,
            rssBytes: process.memoryUsage.rss(),
          },
        };
      },
    },
  ];
}
