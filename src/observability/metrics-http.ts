import { createServer } from 'node:http';
import type { HttpRequest, Route } from '../http/route.js';
import type { Metrics } from './metrics.js';

/**
 * `GET /metrics` on the main port as Prometheus text, behind `allow`, which throws for a caller
 * who may not read it (app.ts passes the publish keys' check: a key, or loopback without keys).
 */
export function metricsRoutes(metrics: Metrics, allow: (req: HttpRequest) => void): Route[] {
  return [
    {
      method: 'GET',
      path: '/metrics',
      async handle(req) {
        allow(req);
        return { status: 200, body: await metrics.registry.metrics(), contentType: metrics.registry.contentType };
      },
    },
  ];
}

/** `/metrics` alone on its own port (METRICS_PORT), without auth: for a scraper on a private network. */
export function startMetricsServer(metrics: Metrics, host: string, port: number): Promise<{ close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () =>
      resolve({ close: () => new Promise<void>((r) => server.close(() => r())) }),
    );
  });
}
