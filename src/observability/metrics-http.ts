import { createServer } from 'node:http';
import { ListenError } from '../errors.js';
import type { HttpRequest, Route } from '../http/route.js';
import type { Logger } from './logger.js';
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
export interface MetricsServer {
  listen(host: string, port: number): Promise<void>;
  /** Stops serving; nothing to do before `listen`. */
  close(): Promise<void>;
}

export function createMetricsServer(metrics: Metrics, logger: Logger): MetricsServer {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (err: unknown) => {
        logger.error({ err }, 'metrics could not be collected');
        res.writeHead(500).end();
      },
    );
  });
  return {
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        const failed = (err: NodeJS.ErrnoException) => reject(new ListenError('METRICS_PORT', host, port, err));
        server.once('error', failed);
        server.listen(port, host, () => {
          server.off('error', failed);
          resolve();
        });
      }),
    close: () => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve())),
  };
}
