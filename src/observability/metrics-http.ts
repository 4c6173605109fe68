import { createServer } from 'node:http';
import type { PublishAuthorizer } from '../auth/publish-keys.js';
import type { Route } from '../transport/http.js';
import type { Metrics } from './metrics.js';

/** `GET /metrics` on the main port, behind the publish keys (or loopback without keys), as Prometheus text. */
export function metricsRoutes(metrics: Metrics, auth: PublishAuthorizer): Route[] {
  return [
    {
      method: 'GET',
      path: '/metrics',
      async handle(req) {
        auth.check(req.headers, req.remoteAddress);
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
