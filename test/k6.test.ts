import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createDelta } from 'fossil-delta';
import { WebSocketServer, type WebSocket } from 'ws';
import { deltaString } from '../src/history/delta.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startHaproxy, type Haproxy } from './helpers/haproxy.js';
import { freePort } from './helpers/ports.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { needs } from './helpers/tools.js';
import { owned } from './helpers/children.js';

const K6 = process.env.K6;
const KEY = 'test-publish-key-0123456789';
const SCRIPTS = fileURLToPath(new URL('../loadtest/k6/', import.meta.url));
/** k6's exit code when thresholds were crossed (anything else is a script or usage error). */
const THRESHOLDS_CROSSED = 99;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The script's summary lines, `label: value`. */
  summary: Record<string, string>;
}

/** Short runs of every script, small enough for a test, and the same numbers for every variant. */
const SMALL: Record<string, Record<string, string>> = {
  'fanout-latency': { SUBSCRIBERS: '20', RATE: '20', DURATION_S: '3', WARMUP_S: '2', DRAIN_S: '2' },
  throughput: { ROOMS: '5', SUBSCRIBERS: '20', MAX_RATE: '100', STAGE_S: '1', WARMUP_S: '2', DRAIN_S: '2' },
  connections: { TARGET: '50', RAMP_S: '2', HOLD_S: '1' },
  churn: { RATE: '20', DURATION_S: '3' },
  recovery: { CLIENTS: '20', RATE: '20', DURATION_S: '5', DROP_EVERY_S: '2', WARMUP_S: '2', DRAIN_S: '3' },
};

/** Runs `script` (a name in loadtest/k6/) with its SMALL variables and `env` over them; cwd `work` (handleSummary writes <scenario>-summary.json there). */
function runK6(script: string, env: Record<string, string>, work: string): Promise<Run> {
  const vars = { ...SMALL[script], ...env };
  const args = ['run', '--no-usage-report', '-q', ...Object.entries(vars).flatMap(([k, v]) => ['-e', `${k}=${v}`]), join(SCRIPTS, `${script}.js`)];
  const child = owned(spawn(K6!, args, { cwd: work, env: { PATH: process.env.PATH, HOME: work, K6_NO_USAGE_REPORT: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      const summary = Object.fromEntries([...stdout.matchAll(/^ {2}([^:\n]+): (.*)$/gm)].map((m) => [m[1]!, m[2]!]));
      resolve({ code, stdout, stderr, summary });
    });
  });
}
const explain = (r: Run) => `exit ${r.code}\n${r.stdout}\n${r.stderr.split('\n').slice(0, 20).join('\n')}`;
const passes = (r: Run) => {
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, /^ {2}all thresholds passed$/m, explain(r));
};
const failsOn = (r: Run, metric: string) => {
  assert.equal(r.code, THRESHOLDS_CROSSED, explain(r));
  assert.match(r.summary['thresholds FAILED'] ?? '', new RegExp(`\\b${metric} `), explain(r));
};

/**
 * The k6 scripts (loadtest/k6/) run by a real k6 against two replicas behind HAProxy with the
 * compose configuration: each passes against a healthy cluster, and fails (k6 exit 99, thresholds
 * crossed) when its subscribes are refused or its messages are lost. Needs a k6 binary, v1.6.0 or
 * newer (`K6=/path/to/k6`); none is packaged for Debian, so it skips without one, CI included.
 */
describe('k6 scripts against two replicas behind HAProxy', { skip: K6 ? needs('haproxy') : 'set K6=/path/to/k6 (v1.6.0 or newer) to run the k6 scripts' }, () => {
  let redis: RedisProcess;
  let lb: Haproxy;
  /** A replica on no Redis: publishes to it are accepted and reach none of the cluster's clients. */
  let island: Gateway;
  const gateways: Gateway[] = [];
  const work = mkdtempSync(join(tmpdir(), 'herald-k6-'));

  before(async () => {
    redis = await startRedis();
    const env = {
      PUBLISH_KEYS: KEY,
      // `private:*` rooms are refused, as compose refuses everything but its PUBLIC_ROOMS.
      PUBLIC_ROOMS: 'load:*, scores:*',
      // fanout-latency's default room with DELTA=1 is load:delta-<ms>.
      HISTORY_ROOMS: 'load:delta-* delta, scores:*',
      // Every k6 connection arrives from HAProxy's one address: size the per-IP limits for the load.
      CONNECT_RATE_PER_IP: '10000',
      CONNECT_BURST_PER_IP: '10000',
    };
    const ports = [await freePort(), await freePort()];
    for (const port of ports) gateways.push(await startGateway({ env: { ...env, REDIS_URL: redis.url, PORT: String(port) } }));
    island = await startGateway({ env });
    lb = await startHaproxy(ports.map((port, i) => ({ name: `gw${i + 1}`, port })));
  });

  after(async () => {
    await lb?.stop();
    await Promise.all([...gateways, island].map((g) => g?.stop()));
    await redis?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const k6 = (script: string, env: Record<string, string> = {}): Promise<Run> => runK6(script, { BASE_URL: lb.url, PUBLISH_KEY: KEY, ...env }, work);

  it('fanout-latency: every subscriber receives every message once', async () => {
    const r = await k6('fanout-latency');
    passes(r);
    const published = Number(r.summary.published);
    assert.ok(published >= 55, explain(r));
    assert.equal(Number(r.summary.received), published * 20, explain(r));
    assert.notEqual(r.summary['latency p99 (ms)'], 'undefined');
  });

  it('fanout-latency DELTA=1: applies every fossil delta on its base in k6, and reports fewer bytes per delivered message than whole scores', async () => {
    // Correctness only: P99_MS lifts the latency threshold out of the way on a busy machine.
    const [delta, whole] = [await k6('fanout-latency', { DELTA: '1', P99_MS: '60000' }), await k6('fanout-latency', { SCORE: '1', P99_MS: '60000' })];
    for (const r of [delta, whole]) {
      passes(r);
      assert.equal(Number(r.summary.received), Number(r.summary.published) * 20, explain(r));
    }
    assert.match(delta.stdout, /^ {2}mode: COMPRESSION=0, SCORE=1, DELTA=1$/m, explain(delta));
    // Each subscriber's first message is whole (and any whose delta would not be smaller).
    assert.ok(Number(delta.summary['deltas applied']) >= (Number(delta.summary.published) - 2) * 20 * 0.9, explain(delta));
    for (const k of ['deltas on a wrong base', 'deltas with a bad checksum', 'malformed deltas', 'deltas not rebuilding the published score']) {
      assert.equal(delta.summary[k], '0', `${k}\n${explain(delta)}`);
    }
    const perMessage = (r: Run) => Number(r.summary['event frame bytes per delivered message']);
    assert.ok(perMessage(delta) > 0 && perMessage(delta) < perMessage(whole) / 2, `${perMessage(delta)} B with deltas, ${perMessage(whole)} B whole`);
    console.log(`# k6 fanout-latency: ${perMessage(whole)} B per delivered message whole, ${perMessage(delta)} B with DELTA=1`);
  });

  it('fanout-latency DELTA=1 fails when the room is not a delta room (subscribe not_found)', async () => {
    const r = await k6('fanout-latency', { DELTA: '1', ROOM: 'scores:k6-delta' });
    failsOn(r, 'subscribe_failures');
    assert.match(r.stderr, /subscribe refused: .*not_found/, explain(r));
  });

  it('throughput: every step delivers what it published, and reports per step', async () => {
    const r = await k6('throughput');
    passes(r);
    assert.equal(Number(r.summary.deliveries), Number(r.summary.published) * 4, explain(r));
    for (let s = 1; s <= 5; s++) assert.match(r.stdout, new RegExp(`step ${s}: ${20 * s}/s asked, .* missing 0$`, 'm'), explain(r));
  });

  it('connections: holds TARGET subscribed connections', async () => {
    const r = await k6('connections');
    passes(r);
    assert.equal(r.summary.subscribed, '50', explain(r));
  });

  it('churn: connect, subscribe, disconnect cycles', async () => {
    const r = await k6('churn');
    passes(r);
    assert.ok(Number(r.summary['cycles ok']) >= 55, explain(r));
  });

  it('recovery: clients that drop come back with since and miss nothing', async () => {
    const r = await k6('recovery');
    passes(r);
    assert.ok(Number(r.summary['resubscribes recovered']) > 0, explain(r));
    assert.equal(Number(r.summary.received), Number(r.summary.published) * 20, explain(r));
  });

  it('recovery BUILTIN=1: clients that drop come back with {pid, offset}, get their session back and miss nothing', async () => {
    const r = await k6('recovery', { BUILTIN: '1' });
    passes(r);
    assert.match(r.stdout, /^ {2}mode: BUILTIN=1 /m, explain(r));
    const published = Number(r.summary.published);
    assert.ok(published >= 90, explain(r));
    assert.equal(Number(r.summary.received), published * 20, explain(r));
    assert.equal(r.summary['missing (published x clients - received once)'], '0', explain(r));
    assert.equal(r.summary.duplicates, '0', explain(r));
    // Every client drops every 1-3 s over 10 s: well over one reconnect each, every one restored.
    assert.ok(Number(r.summary['reconnects recovered']) >= 20, explain(r));
    assert.equal(r.summary['reconnects not recovered'], '0', explain(r));
  });

  it('every script fails when its subscribes are refused (forbidden room)', async () => {
    const runs = await Promise.all([
      k6('fanout-latency', { ROOM: 'private:k6' }),
      k6('throughput', { ROOM_PREFIX: 'private:k6' }),
      k6('connections', { ROOM: 'private:k6' }),
      k6('churn', { ROOM: 'private:k6' }),
      k6('recovery', { ROOM: 'private:k6' }),
      k6('recovery', { ROOM: 'private:k6', BUILTIN: '1' }),
    ]);
    for (const r of runs) {
      failsOn(r, 'subscribe_failures');
      assert.match(r.stderr, /subscribe refused: .*forbidden/, explain(r));
    }
  });

  it('the publishing scripts fail when messages are lost (published where no subscriber is)', async () => {
    const runs = await Promise.all([
      k6('fanout-latency', { PUBLISH_URL: island.url }),
      k6('throughput', { PUBLISH_URL: island.url }),
      k6('recovery', { PUBLISH_URL: island.url }),
      k6('recovery', { PUBLISH_URL: island.url, BUILTIN: '1' }),
    ]);
    for (const r of runs) {
      failsOn(r, 'messages_missing');
      assert.ok(Number(r.summary.published) > 0, explain(r));
    }
  });
});

/**
 * fanout-latency DELTA=1 against a stand-in for herald that sends faulty deltas on purpose: a real
 * gateway never sends a delta on a wrong base or with a wrong checksum, so the k6 side of those
 * failures is checked against a small Engine.IO/Socket.IO server here. It speaks what the script
 * needs (open, connect, subscribe ack, events `[event, data, meta]`, `POST /v1/publish`) and
 * computes deltas with fossil-delta, as herald does. Run clean it must pass, so the failures
 * below are the faults' and not the stand-in's.
 */
describe('k6 fanout-latency DELTA=1 against a server sending faulty deltas', { skip: K6 ? false : 'set K6=/path/to/k6 (v1.6.0 or newer) to run the k6 scripts' }, () => {
  const work = mkdtempSync(join(tmpdir(), 'herald-k6-faults-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  /** Every `every`-th message after the first few goes out as a fault of `kind` to every subscriber, and the next one whole. */
  async function standIn(fault?: { kind: 'wrong-base' | 'checksum'; every: number }) {
    interface Sub {
      ws: WebSocket;
      /** The id of the last message sent to it, or undefined when its next message must be whole. */
      held?: string;
    }
    const subs = new Set<Sub>();
    let previous: { id: string; bytes: Buffer } | undefined;
    let n = 0;
    const send = (sub: Sub, event: string, data: unknown, meta: object) => sub.ws.send(`42${JSON.stringify([event, data, meta])}`);
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/publish') return void res.writeHead(404).end();
        const { room, event, data } = JSON.parse(body) as { room: string; event: string; data: unknown };
        n++;
        const id = `${n}-0`;
        const bytes = Buffer.from(JSON.stringify(data));
        const faulty = fault !== undefined && n > 3 && n % fault.every === 0;
        for (const sub of subs) {
          const meta = { room, id, ts: Date.now() };
          if (sub.held === undefined || previous === undefined || sub.held !== previous.id) send(sub, event, data, meta);
          else if (!faulty) send(sub, event, deltaString(Uint8Array.from(createDelta(previous.bytes, bytes))), { ...meta, base: previous.id });
          else if (fault.kind === 'wrong-base') send(sub, event, deltaString(Uint8Array.from(createDelta(previous.bytes, bytes))), { ...meta, base: `${n - 2}-0` });
          else {
            // Made between two other payloads of the same lengths (one byte of the score's stats,
            // which never change, altered in both): it applies to the base, copying the byte the
            // delta did not expect there, and the result fails the checksum.
            const flip = (b: Buffer) => {
              const c = Buffer.from(b);
              const at = c.indexOf('possession');
              assert.ok(at > 0);
              c[at] = c[at]! ^ 1;
              return c;
            };
            send(sub, event, deltaString(Uint8Array.from(createDelta(flip(previous.bytes), flip(bytes)))), { ...meta, base: previous.id });
          }
          sub.held = faulty ? undefined : id;
        }
        previous = { id, bytes };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, id }));
      });
    });
    const wss = new WebSocketServer({ server, path: '/socket.io/' });
    wss.on('connection', (ws) => {
      ws.send(`0${JSON.stringify({ sid: 'standin', upgrades: [], pingInterval: 25000, pingTimeout: 20000, maxPayload: 1e6 })}`);
      ws.on('message', (raw: Buffer) => {
        const frame = raw.toString();
        if (frame.startsWith('40')) ws.send('40{"sid":"standin"}');
        else if (frame.startsWith('421[')) {
          const [, arg] = JSON.parse(frame.slice(3)) as [string, { room: string; delta?: string }];
          assert.equal(arg.delta, 'fossil');
          subs.add({ ws });
          ws.send(`431${JSON.stringify([{ ok: true, room: arg.room }])}`);
        }
      });
      ws.on('close', () => {
        for (const s of subs) if (s.ws === ws) subs.delete(s);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return {
      url,
      stop: () => new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
    };
  }

  const run = async (fault?: Parameters<typeof standIn>[0]) => {
    const server = await standIn(fault);
    try {
      return await runK6('fanout-latency', { BASE_URL: server.url, DELTA: '1', P99_MS: '60000', ROOM: 'load:delta-standin' }, work);
    } finally {
      await server.stop();
    }
  };

  it('passes against the stand-in sending good deltas', async () => {
    const r = await run();
    passes(r);
    assert.ok(Number(r.summary['deltas applied']) > 0, explain(r));
  });

  it('fails on deltas on a wrong base: counted, never applied, and their messages missing', async () => {
    const r = await run({ kind: 'wrong-base', every: 7 });
    failsOn(r, 'delta_wrong_base');
    assert.ok(Number(r.summary['deltas on a wrong base']) >= 20, explain(r));
    assert.equal(r.summary['deltas with a bad checksum'], '0', explain(r));
    assert.equal(Number(r.summary['missing (published x subscribers - received once)']), Number(r.summary['deltas on a wrong base']), explain(r));
    assert.match(r.stderr, /delta not applied: delta_wrong_base/, explain(r));
  });

  it('fails on deltas whose checksum does not match (made from another source)', async () => {
    const r = await run({ kind: 'checksum', every: 7 });
    failsOn(r, 'delta_checksum');
    assert.ok(Number(r.summary['deltas with a bad checksum']) >= 20, explain(r));
    assert.equal(r.summary['deltas on a wrong base'], '0', explain(r));
    assert.equal(r.summary['deltas not rebuilding the published score'], '0', explain(r));
    assert.match(r.stderr, /delta not applied: delta_checksum/, explain(r));
  });
});
