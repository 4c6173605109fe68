/**
 * `npm run bench:scale`: the scale scenario at 100,000 fans (issue 30), then one Redis core's
 * pub/sub capacity and the plan for 1M fans. Starts and stops everything it needs, on loopback.
 * Prints the tables and writes bench/scale-results.json and bench/scale-results.md.
 *
 * Sizes from the environment, for smaller runs: SCALE_CONNECTIONS (100000), SCALE_REPLICAS (7),
 * SCALE_CLIENTS (7), SCALE_MATCHES (1000), SCALE_BROADCAST_S (60), SCALE_STORM_S (60), SCALE_IDLE_S (25), SCALE_RSS_SETTLE_S (60: the replicas' RSS is the lowest of readings every 5 s over this long after the idle window),
 * SCALE_MATCH_RATE (200 updates/s over all matches), SCALE_USER_RATE (20/s), SCALE_STORMS (kill,drain),
 * SCALE_STORM_BROADCAST (0.1 broadcasts/s: the second broadcast phase and the storms), SCALE_STORM_MATCH_RATE (50/s),
 * SCALE_DRAIN_SECONDS (herald's DRAIN_SECONDS, default 10), SCALE_HANDSHAKE_MAX_LAG_MS (herald's HANDSHAKE_MAX_LAG_MS), SCALE_CEILING=0 (skips the run of the
 * same fans against raw uWS processes in the replicas' place, which follows herald's, with the kill -9
 * storm when SCALE_STORMS has it).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../stacks.js';
import { pastOneMachine } from './paper.js';
import { measureRedisPubSub } from './redis-capacity.js';
import { machine, scaleMarkdown } from './report.js';
import { runScale, type ScaleOptions, type ScaleResult } from './scenario.js';

const num = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const connections = num('SCALE_CONNECTIONS', 100_000);
const started = Date.now();
const stormSeconds = num('SCALE_STORM_S', 60);

// Interrupted: exit, so cluster.ts kills the replicas and Redis it started.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

// The whole run is bounded: a stuck phase fails it rather than hanging.
const bound = setTimeout(() => {
  console.error('# bench:scale: over 30 minutes; giving up');
  process.exit(2);
}, 30 * 60_000);
bound.unref();

const options: ScaleOptions = {
  connections,
  replicas: num('SCALE_REPLICAS', 7),
  clientProcesses: num('SCALE_CLIENTS', 7),
  matches: num('SCALE_MATCHES', 1000),
  idleSeconds: num('SCALE_IDLE_S', 25),
  rssSettleSeconds: num('SCALE_RSS_SETTLE_S', 60),
  broadcastSeconds: num('SCALE_BROADCAST_S', 60),
  stormSeconds,
  stormAtSeconds: Math.min(10, Math.floor(stormSeconds / 4)),
  storms: (process.env.SCALE_STORMS ?? 'kill,drain').split(',') as ('kill' | 'drain')[],
  rates: { broadcast: 1, match: num('SCALE_MATCH_RATE', 200), user: num('SCALE_USER_RATE', 20) },
  // Measured here: a broadcast a second to 100,000 fans, with their clients on the same two cores,
  // needs more CPU than the machine has (deliveries fall minutes behind), and a storm on a
  // saturated machine never ends. So the broadcast is measured again, and the storms run, with a
  // broadcast every 10 s and a quarter of the match traffic.
  stormRates: { broadcast: num('SCALE_STORM_BROADCAST', 0.1), match: num('SCALE_STORM_MATCH_RATE', 50), user: num('SCALE_USER_RATE', 20) },
  env: {
    ...(process.env.SCALE_DRAIN_SECONDS ? { DRAIN_SECONDS: process.env.SCALE_DRAIN_SECONDS } : {}),
    ...(process.env.SCALE_HANDSHAKE_MAX_LAG_MS ? { HANDSHAKE_MAX_LAG_MS: process.env.SCALE_HANDSHAKE_MAX_LAG_MS } : {}),
  } as Record<string, string>,
  localAddresses: 64,
  connectTimeoutSeconds: 300,
  backTimeoutSeconds: 120,
  log: (line: string) => console.log(line),
};
const result = await runScale(options);
// The ceiling: the same fans and publishing against raw uWS processes in the replicas' place (SCALE_CEILING=0 skips it).
let ceiling: ScaleResult | undefined;
if (process.env.SCALE_CEILING !== '0') {
  console.log('# the same fans against raw uWS (the ceiling)');
  ceiling = await runScale({ ...options, server: 'ceiling', rates: { ...options.rates, user: 0 }, stormRates: { ...(options.stormRates ?? options.rates), user: 0 } });
}
console.log('# measuring one Redis core\'s pub/sub capacity');
const redis = await measureRedisPubSub();
const paper = pastOneMachine(result, redis);
const seconds = (Date.now() - started) / 1000;
const markdown = scaleMarkdown(result, redis, paper, 'npm run bench:scale', seconds, ceiling);
console.log(`\n${markdown}\n`);
writeFileSync(join(ROOT, 'bench/scale-results.json'), `${JSON.stringify({ machine: machine(), date: new Date().toISOString(), seconds, result, ceiling, redis, paper }, null, 2)}\n`);
writeFileSync(join(ROOT, 'bench/scale-results.md'), `${markdown}\n`);
console.log('# wrote bench/scale-results.json and bench/scale-results.md');
process.exit(0);
