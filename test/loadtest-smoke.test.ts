import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeReport } from '../loadtest/harness/report.js';
import * as scenarios from '../loadtest/harness/scenarios.js';
import { Workers } from '../loadtest/harness/workers.js';
import { getJson } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';

const KEY = 'test-publish-key-0123456789';

/**
 * A small, short run of every harness scenario against two replicas and Redis: it keeps the
 * harness and its wire protocol code (shared with the k6 scripts) honest. Performance thresholds
 * are not asserted here; the k6 scripts' correctness thresholds are (no missing or duplicate
 * message, no refused subscribe), and a run that breaks them is shown to fail.
 */
describe('load-test harness smoke runs', () => {
  let redis: RedisProcess;
  let gateways: Gateway[] = [];
  let workers: Workers;
  /** A replica on no Redis that refuses `load:*` rooms: publishes to it reach no cluster client. */
  let island: Gateway;
  const out = mkdtempSync(join(tmpdir(), 'herald-harness-'));
  const results: Record<string, Record<string, unknown>> = {};

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'load:recovery*', CONNECT_BURST_PER_IP: '5000', CONNECT_RATE_PER_IP: '5000' };
    gateways = await Promise.all([startGateway({ env }), startGateway({ env })]);
    island = await startGateway({ env: { PUBLISH_KEYS: KEY, PUBLIC_ROOMS: 'scores:*', CONNECT_BURST_PER_IP: '5000', CONNECT_RATE_PER_IP: '5000' } });
    workers = await Workers.start(2);
  });
  after(async () => {
    await workers?.stop();
    await Promise.all([...gateways, island].map((g) => g?.stop()));
    await redis?.stop();
    rmSync(out, { recursive: true, force: true });
  });

  const target = () => ({
    urls: gateways.map((g) => g.url),
    key: KEY,
    rss: async () => (await Promise.all(gateways.map(async (g) => (await getJson(`${g.url}/readyz`)).body.rssBytes as number))).reduce((a, b) => a + b, 0),
  });

  it('fanout-latency: every subscriber gets every message once', async () => {
    const r = await scenarios.fanoutLatency(workers, target(), { subscribers: 200, rate: 50, seconds: 2 });
    results.fanout = r;
    assert.deepEqual([r.subscribers, r.failedConnects], [200, 0]);
    assert.equal(r.published, 100);
    assert.deepEqual([r.missing, r.duplicates, r.delivered], [0, 0, 200 * 100]);
    assert.ok(r.latencyMs.samples > 0);
  });

  it('throughput: steps of rising rate over many rooms', async () => {
    const r = await scenarios.throughput(workers, target(), { rooms: 20, subscribersPerRoom: 10, rates: [50, 200], secondsPerStep: 1.5 });
    results.throughput = r;
    assert.deepEqual([r.connections, r.failedConnects, r.steps.length], [200, 0, 2]);
    // Count mode has no sequence numbers: delivered == owed means nothing lost and nothing twice.
    for (const s of r.steps) assert.ok(s.published > 0 && s.delivered === s.expected && s.expected === s.published * 10, JSON.stringify(s));
  });

  it('connections: ramp to idle connections and hold', async () => {
    const r = await scenarios.connections(workers, target(), { count: 1000, holdSeconds: 1 });
    results.connections = r;
    assert.deepEqual([r.connected, r.heldAfter, r.failedConnects], [1000, 1000, 0]);
    assert.equal(typeof r.bytesPerConnection, 'number');
  });

  it('churn: connect, subscribe, disconnect storms', async () => {
    const r = await scenarios.churn(workers, target(), { cycles: 400, concurrency: 25 });
    results.churn = r;
    assert.deepEqual([r.ok, r.failed], [400, 0]);
  });

  it('recovery: clients drop and resubscribe with since, without gaps or duplicates', async () => {
    const r = await scenarios.recovery(workers, target(), { clients: 100, rate: 40, seconds: 3, room: 'load:recovery', drops: 2 });
    results.recovery = r;
    assert.deepEqual([r.clients, r.reconnects], [100, 100]);
    assert.deepEqual([r.recovered, r.unrecovered, r.missing, r.duplicates], [100, 0, 0, 0]);
  });

  it('sse-fanout: event streams get every message once; cut streams resume with Last-Event-ID', async () => {
    const r = await scenarios.sseFanout(workers, target(), { streams: 200, rate: 50, seconds: 2 });
    results.sse = r;
    assert.deepEqual([r.streams, r.failedConnects, r.published], [200, 0, 100]);
    assert.deepEqual([r.missing, r.duplicates, r.delivered], [0, 0, 200 * 100]);
    assert.ok(r.latencyMs.samples > 0);
    const resumed = await scenarios.sseFanout(workers, target(), { streams: 100, rate: 40, seconds: 3, room: 'load:recovery-sse', drops: 2 });
    assert.deepEqual([resumed.streams, resumed.reconnects], [100, 100]);
    assert.deepEqual([resumed.recovered, resumed.unrecovered, resumed.missing, resumed.duplicates], [100, 0, 0, 0]);
  });

  it('a run that loses messages or has its subscribes refused fails these checks', async () => {
    // Published where none of the subscribers is: every publish is accepted, none arrives.
    const lost = await scenarios.fanoutLatency(workers, { ...target(), publishUrls: [island.url] }, { subscribers: 20, rate: 20, seconds: 1 });
    assert.ok(lost.published > 0);
    assert.deepEqual([lost.delivered, lost.missing], [0, lost.published * 20]);
    const step = (await scenarios.throughput(workers, { ...target(), publishUrls: [island.url] }, { rooms: 2, subscribersPerRoom: 5, rates: [20], secondsPerStep: 1 })).steps[0]!;
    assert.ok(step.expected > 0 && step.delivered === 0, JSON.stringify(step));
    // Subscribes to a room the gateway refuses (`forbidden`) count as failed, not connected.
    const refused = await scenarios.churn(workers, { urls: [island.url], key: KEY }, { cycles: 20, concurrency: 5 });
    assert.deepEqual([refused.ok, refused.failed], [0, 20]);
  });

  it('writes a JSON report, a Markdown table and an SVG chart', () => {
    const files = writeReport(out, 'smoke', { machine: 'test', results });
    const json = JSON.parse(readFileSync(files.json, 'utf8')) as { results: Record<string, unknown> };
    assert.deepEqual(Object.keys(json.results).sort(), ['churn', 'connections', 'fanout', 'recovery', 'sse', 'throughput']);
    assert.match(readFileSync(files.markdown, 'utf8'), /\| fanout-latency \|/);
    assert.match(readFileSync(files.svg, 'utf8'), /^<svg/);
    console.log(`# harness smoke: ${readFileSync(files.markdown, 'utf8').split('\n').filter((l) => l.startsWith('|')).length - 2} result rows`);
  });
});

describe('k6 scripts', () => {
  const dir = new URL('../loadtest/k6/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.js'));

  it('parse, and import only k6 modules and the shared modules Node runs too (wire protocol, fossil apply)', () => {
    assert.deepEqual(files.sort(), ['churn.js', 'common.js', 'connections.js', 'fanout-latency.js', 'recovery.js', 'throughput.js']);
    for (const f of files) {
      const path = fileURLToPath(new URL(f, dir));
      execFileSync(process.execPath, ['--check', path]);
      const imports = [...readFileSync(path, 'utf8').matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]!);
      for (const spec of imports) assert.ok(/^k6(\/|$)/.test(spec) || spec === './common.js' || spec === '../lib/socketio.js' || spec === '../lib/fossil.js', `${f} imports ${spec}`);
    }
  });
});
