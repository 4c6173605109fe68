/**
 * `node --import tsx loadtest/harness/cli.ts <scenario> <url>...`: one harness scenario against
 * running gateways (a deployment, compose, a balancer), its result printed as JSON and as the
 * report's Markdown row. Settings come from the environment, named as in the k6 scripts:
 *
 *   KEY        publish key (PUBLISH_KEYS) for POST /v1/publish
 *   WORKERS    client processes (default 2)
 *   SUBSCRIBERS, RATE, SECONDS                fanout-latency, sse-fanout (SUBSCRIBERS: streams)
 *   ROOMS, RATES (comma-separated), STAGE_S  throughput (SUBSCRIBERS per room)
 *   TARGET, HOLD_S                           connections
 *   CYCLES, CONCURRENCY                      churn
 *   CLIENTS, ROOM, DROPS                     recovery; sse-fanout takes ROOM and DROPS too
 *
 * Every scenario opens connections from 127.0.0.1-16 (loopback) source addresses, so it runs on
 * the machine the gateways (or their balancer) listen on, or any machine that routes those.
 */
import { fileURLToPath } from 'node:url';
import { markdownTable } from './report.js';
import * as scenarios from './scenarios.js';
import { Workers } from './workers.js';

const SCENARIOS = ['fanout-latency', 'throughput', 'connections', 'churn', 'recovery', 'sse-fanout'] as const;
type Name = (typeof SCENARIOS)[number];

const num = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number, got "${raw}"`);
  return n;
};

export async function run(name: Name, urls: string[], workers: Workers): Promise<Record<string, unknown>> {
  const target = { urls, ...(process.env.KEY ? { key: process.env.KEY } : {}) };
  switch (name) {
    case 'fanout-latency':
      return scenarios.fanoutLatency(workers, target, { subscribers: num('SUBSCRIBERS', 1000), rate: num('RATE', 100), seconds: num('SECONDS', 10) });
    case 'throughput':
      return scenarios.throughput(workers, target, {
        rooms: num('ROOMS', 10),
        subscribersPerRoom: num('SUBSCRIBERS', 100),
        rates: (process.env.RATES ?? '100,500,1000,2000,5000').split(',').map(Number),
        secondsPerStep: num('STAGE_S', 5),
      });
    case 'connections':
      return scenarios.connections(workers, target, { count: num('TARGET', 1000), holdSeconds: num('HOLD_S', 10) });
    case 'churn':
      return scenarios.churn(workers, target, { cycles: num('CYCLES', 1000), concurrency: num('CONCURRENCY', 50) });
    case 'recovery':
      return scenarios.recovery(workers, target, { clients: num('CLIENTS', 100), rate: num('RATE', 20), seconds: num('SECONDS', 30), room: process.env.ROOM ?? 'load:recovery', drops: num('DROPS', 3) });
    case 'sse-fanout':
      return scenarios.sseFanout(workers, target, {
        streams: num('SUBSCRIBERS', 1000),
        rate: num('RATE', 100),
        seconds: num('SECONDS', 10),
        ...(process.env.ROOM ? { room: process.env.ROOM } : {}),
        drops: num('DROPS', 0),
      });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [name, ...urls] = process.argv.slice(2);
  if (!SCENARIOS.includes(name as Name) || urls.length === 0) {
    console.error(`usage: node --import tsx loadtest/harness/cli.ts <${SCENARIOS.join('|')}> <url>...`);
    process.exit(2);
  }
  const workers = await Workers.start(num('WORKERS', 2));
  try {
    const result = await run(name as Name, urls, workers);
    console.log(JSON.stringify(result, null, 2));
    console.log(markdownTable({ [name!]: result }));
  } finally {
    await workers.stop();
  }
}
