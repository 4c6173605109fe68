import assert from 'node:assert/strict';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';
import { getJson, publish } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { needs, toolPath } from './helpers/tools.js';
import { waitFor } from './helpers/wait.js';

// The client module (client/) in a real browser: a page served by this test loads it with
// socket.io-client's browser build (bundled here by esbuild), subscribes with deltas to a room on
// one of two replicas, and receives scores published through the other; then its connection is
// dropped and it catches up.

const KEY = 'test-publish-key-0123456789';
const ROOT = fileURLToPath(new URL('..', import.meta.url));

const PAGE = `<!doctype html><meta charset="utf-8"><title>herald client</title>
<script type="module">
import { io, HeraldClient } from '/bundle.js';
const params = new URLSearchParams(location.search);
const socket = io(params.get('herald'), { transports: ['websocket'], reconnectionDelay: 20, reconnectionDelayMax: 100 });
const herald = new HeraldClient(socket);
window.got = [];
window.herald = herald;
window.socket = socket;
window.connects = 0;
socket.on('connect', () => window.connects++);
herald.on('score', (data, meta) => window.got.push({ data, id: meta.id }));
herald.subscribe(params.get('room'), { delta: 'fossil' }).then((ack) => { window.ack = ack; }, (err) => { window.ack = { error: String(err) }; });
</script>`;

function score(i: number): object {
  return { match: 'match-7', home: { team: 'Über Städter FC', goals: Math.floor(i / 4) }, away: { team: 'Łódź Wanderers', goals: Math.floor(i / 9) }, minute: i, note: `minute ${i} — ✓` };
}

describe('client module in headless Chromium', { skip: needs('chromium') }, () => {
  let redis: RedisProcess;
  const gateways: Gateway[] = [];
  let http: HttpServer;
  let origin: string;
  let browser: Browser;

  before(async () => {
    const bundle = await build({
      stdin: { contents: "export { io } from 'socket.io-client'; export { HeraldClient } from './client/src/index.ts';", resolveDir: ROOT, loader: 'ts' },
      bundle: true,
      format: 'esm',
      platform: 'browser',
      write: false,
    });
    const js = bundle.outputFiles[0]!.text;
    http = createServer((req, res) => {
      if (req.url === '/bundle.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
      else res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'scores:* delta', CORS_ORIGINS: origin };
    for (let i = 0; i < 2; i++) gateways.push(await startGateway({ env }));
    for (const g of gateways) await waitFor(`${g.replicaId} ready`, async () => (await getJson(`${g.url}/readyz`)).status === 200);
    browser = await chromium.launch({
      executablePath: toolPath('chromium'),
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    await browser?.close();
    await Promise.all(gateways.map((g) => g.stop()));
    await redis?.stop();
    await new Promise((resolve) => http?.close(resolve));
  });

  it('reconstructs every payload from deltas, in order, across replicas and a dropped connection', async () => {
    const [a, b] = gateways as [Gateway, Gateway];
    const room = 'scores:browser';
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${origin}/?herald=${encodeURIComponent(a.url)}&room=${room}`);
    await page.waitForFunction(() => (window as unknown as { ack?: unknown }).ack !== undefined, undefined, { timeout: 10_000 });
    assert.equal((await page.evaluate(() => (window as unknown as { ack: { ok?: boolean } }).ack.ok)), true, JSON.stringify(await page.evaluate(() => (window as unknown as { ack: unknown }).ack)));

    const published: { data: object; id: string }[] = [];
    const send = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const data = score(i);
        const res = await publish(i % 2 ? a.url : b.url, { room, event: 'score', data }, KEY);
        assert.equal(res.status, 200);
        published.push({ data, id: res.body.ids[room] as string });
      }
    };
    await send(0, 30);
    await page.waitForFunction((n) => (window as unknown as { got: unknown[] }).got.length >= n, 30, { timeout: 10_000 });
    // The connection drops (the engine closes); the module reconnects and re-subscribes with since.
    await page.evaluate(() => (window as unknown as { socket: { io: { engine: { close(): void } } } }).socket.io.engine.close());
    await send(30, 45);
    await page.waitForFunction(() => (window as unknown as { connects: number }).connects === 2, undefined, { timeout: 10_000 });
    await send(45, 60);
    await page.waitForFunction((n) => (window as unknown as { got: unknown[] }).got.length >= n, 60, { timeout: 10_000 });

    const got = await page.evaluate(() => (window as unknown as { got: unknown[] }).got);
    const stats = await page.evaluate(() => (window as unknown as { herald: { stats: { deltas: number; mismatches: number } } }).herald.stats);
    assert.deepEqual(got, published);
    assert.ok(stats.deltas > 20, `deltas applied: ${stats.deltas}`);
    assert.equal(stats.mismatches, 0);
    assert.deepEqual(errors, []);
    await page.close();
  });
});
