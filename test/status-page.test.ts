import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { connectClient, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startHaproxy, type Haproxy } from './helpers/haproxy.js';
import { freePort } from './helpers/ports.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { needs, toolPath } from './helpers/tools.js';

const KEY = 'test-publish-key-0123456789';
/** The picture docs/reference/operations.md shows is refreshed only when asked (HERALD_UPDATE_DOCS=1): a test run leaves the tree clean. */
const SCREENSHOT = process.env.HERALD_UPDATE_DOCS === '1' ? fileURLToPath(new URL('../docs/status-page.png', import.meta.url)) : join(tmpdir(), `herald-status-page-${process.pid}.png`);

/** What a new user opens first: the status page, through the balancer, in a real browser. */
describe('status page in headless Chromium', { skip: needs('haproxy', 'chromium') }, () => {
  let redis: RedisProcess;
  let lb: Haproxy;
  let browser: Browser;
  const gateways: Gateway[] = [];
  const load: TestClient[] = [];

  before(async () => {
    redis = await startRedis();
    const ports = [await freePort(), await freePort()];
    for (const [i, port] of ports.entries()) {
      gateways.push(
        await startGateway({
          env: { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, PORT: String(port), REPLICA_ID: `replica-${i + 1}`, HISTORY_ROOMS: 'demo:*' },
        }),
      );
    }
    lb = await startHaproxy(ports.map((port, i) => ({ name: `gw${i + 1}`, port })));
    // Playwright gives the browser a fresh temporary profile; the flags keep it off the network.
    browser = await chromium.launch({
      executablePath: toolPath('chromium'),
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    // Some traffic, so the numbers are not all zero.
    for (let i = 0; i < 20; i++) {
      const c = await connectClient(lb.url);
      await c.subscribe('load:room');
      load.push(c);
    }
  });

  after(async () => {
    await browser?.close();
    for (const c of load) c.close();
    await lb?.stop();
    await Promise.all(gateways.map((g) => g.stop()));
    await redis?.stop();
  });

  it('loads, shows live numbers for both replicas, and a publish shows up in the demo room', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    await page.goto(lb.url);
    await page.waitForFunction(() => document.querySelectorAll('#table tr').length === 2);
    assert.equal(await page.textContent('#replicas'), '2');
    const via = await page.waitForFunction(() => document.getElementById('via')?.textContent?.startsWith('replica-'));
    assert.ok(via);

    const publishing = setInterval(() => void publish(lb.url, { room: 'load:room', event: 'tick', data: Date.now() }, KEY), 20);
    try {
      // The connections card counts the page itself and the 20 load clients.
      await page.waitForFunction(() => Number(document.getElementById('connections')!.textContent!.replace(/,/g, '')) >= 21);
      await page.waitForFunction(() => Number(document.getElementById('rate')!.textContent!.replace(/,/g, '')) > 0);
      await page.waitForFunction(() => /ms$/.test(document.getElementById('p99')!.textContent!));

      const sent = Date.now();
      const res = await publish(lb.url, { room: 'demo:live-score', event: 'score', data: { home: 3, away: 1 } }, KEY);
      assert.equal(res.status, 200);
      await page.waitForFunction(() => document.getElementById('score')!.textContent === '3 : 1');
      console.log(`# demo room: the publish was on the page ${Date.now() - sent} ms after it was sent`);
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    } finally {
      clearInterval(publishing);
    }
  });
});
