import type { StatsReporter } from './stats.js';
import type { Route } from '../http/route.js';
import { statusPageHtml } from './page.js';

/**
 * `GET /` (the status page) and `GET /v1/stats` (its data: this replica and the cluster). The page
 * connects to Socket.IO on `socketioPath`.
 */
export function statusRoutes(stats: StatsReporter, socketioPath: string): Route[] {
  const html = statusPageHtml(socketioPath);
  return [
    { method: 'GET', path: '/', handle: () => ({ status: 200, body: html, contentType: 'text/html; charset=utf-8' }) },
    {
      method: 'GET',
      path: '/v1/stats',
      async handle() {
        return { status: 200, body: { replica: stats.current().replica, cluster: await stats.cluster() } };
      },
    },
  ];
}
