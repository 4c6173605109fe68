import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import type { Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { connectClient, publish, type ClientTransport, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedisCluster, type RedisCluster } from './helpers/redis-cluster.js';
import { needs, toolPath } from './helpers/tools.js';
import { onceWithin, waitFor, WAIT_MS, type Emitterish } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
/** Behind an ingress that forwards `/herald/` as it is. */
const PATH = '/herald/socket.io';
const PING_INTERVAL_MS = 1000;
const PING_TIMEOUT_MS = 1500;
const TRANSPORTS = ['uws', 'node'] as const;

const env = (transport: string) => ({
  TRANSPORT: transport,
  PUBLISH_KEYS: KEY,
  // Written with a trailing slash, as a path often is; herald drops it.
  SOCKETIO_PATH: `${PATH}/`,
  PING_INTERVAL_MS: String(PING_INTERVAL_MS),
  PING_TIMEOUT_MS: String(PING_TIMEOUT_MS),
});

/** A GET that fails the test instead of hanging it. */
const get = (url: string) => fetch(url, { signal: AbortSignal.timeout(WAIT_MS) });

/** Engine.IO's open packet, `0{"sid",...,"pingInterval","pingTimeout",...}`. */
function openPacket(frame: string): { sid: string; pingInterval: number; pingTimeout: number } {
  assert.match(frame, /^0\{/, `an open packet: ${frame}`);
  return JSON.parse(frame.slice(1));
}

/** A WebSocket speaking Engine.IO by hand under PATH; `answerPings: false` plays a client gone silent. */
async function rawEngine(url: string, answerPings: boolean) {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${PATH}/?EIO=4&transport=websocket`);
  const frames: string[] = [];
  ws.on('message', (data) => {
    const text = data.toString();
    frames.push(text);
    if (text === '2' && answerPings) ws.send('3');
  });
  ws.on('error', () => {});
  const closed = onceWithin(ws, 'close', 'the raw WebSocket to close');
  closed.catch(() => {});
  await waitFor('the open packet', () => frames[0]);
  return { ws, frames, closed, pings: () => frames.filter((f) => f === '2').length };
}

async function connectUnderPath(url: string, transport: ClientTransport): Promise<Socket> {
  return (await connectClient(url, { path: PATH, transport })).socket;
}

for (const transport of TRANSPORTS) {
  describe(`SOCKETIO_PATH, PING_INTERVAL_MS and PING_TIMEOUT_MS on the ${transport} transport`, () => {
    let gw: Gateway;
    const sockets: Socket[] = [];
    before(async () => {
      gw = await startGateway({ env: env(transport) });
      const listening = await gw.waitForLog('listening', (l) => l.msg === 'listening');
      assert.equal(listening.transport, transport, 'the transport under test is the one serving');
    });
    after(async () => {
      for (const s of sockets) s.close();
      await gw?.stop();
    });

    it('clients connect under the path over WebSocket, long-polling and the upgrade, and receive a publish', async () => {
      for (const transport of ['websocket', 'polling', 'upgrade'] as const) {
        const socket = await connectUnderPath(gw.url, transport);
        sockets.push(socket);
        const ack = await socket.timeout(5000).emitWithAck('subscribe', 'scores:path');
        assert.equal(ack.ok, true, `${transport}: ${JSON.stringify(ack)}`);
      }
      if (sockets[2]!.io.engine.transport.name !== 'websocket') await onceWithin(sockets[2]!.io.engine as unknown as Emitterish, 'upgrade', 'the upgrade to WebSocket');
      const got = sockets.map((s) => onceWithin<[unknown]>(s, 'score', 'the publish'));
      assert.equal((await publish(gw.url, { room: 'scores:path', event: 'score', data: 7 }, KEY)).status, 200);
      assert.deepEqual((await Promise.all(got)).map(([data]) => data), [7, 7, 7]);
    });

    it('Engine.IO answers only there; herald routes and the status page keep theirs, and the page follows the path', async () => {
      const atDefault = await get(`${gw.url}/socket.io/?EIO=4&transport=polling`);
      assert.equal(atDefault.status, 404, 'nothing at the default path');
      assert.equal(((await atDefault.json()) as { error: { code: string } }).error.code, 'not_found', "herald's own 404");
      assert.equal((await get(`${gw.url}/healthz`)).status, 200);
      const page = await get(`${gw.url}/`).then((r) => r.text());
      assert.ok(page.includes(`<script src="${PATH}/socket.io.js"></script>`), 'the page loads the client from the path');
      assert.ok(page.includes(`io({ path: '${PATH}',`), 'and connects there');
      const client = await get(`${gw.url}${PATH}/socket.io.js`);
      assert.equal(client.status, 200);
      assert.match(client.headers.get('content-type') ?? '', /javascript/);
    });

    it('the open packet carries the ping interval and timeout, on long-polling and WebSocket', async () => {
      const polling = await get(`${gw.url}${PATH}/?EIO=4&transport=polling`);
      assert.equal(polling.status, 200);
      const viaPolling = openPacket(await polling.text());
      assert.deepEqual([viaPolling.pingInterval, viaPolling.pingTimeout], [PING_INTERVAL_MS, PING_TIMEOUT_MS]);
      const raw = await rawEngine(gw.url, true);
      const viaWs = openPacket(raw.frames[0]!);
      assert.deepEqual([viaWs.pingInterval, viaWs.pingTimeout], [PING_INTERVAL_MS, PING_TIMEOUT_MS]);
      raw.ws.terminate();
      // socket.io-client reads the same packet.
      const socket = await connectUnderPath(gw.url, 'websocket');
      sockets.push(socket);
      assert.equal((socket.io.engine as unknown as { _pingInterval: number })._pingInterval, PING_INTERVAL_MS);
    });

    it('pings at that interval; a client that stops answering is closed by the ping timeout', async () => {
      // Waits bounded by the default deadline (10 s): at Socket.IO's 25 s interval no ping would come.
      const answering = await rawEngine(gw.url, true);
      const silent = await rawEngine(gw.url, false);
      await waitFor('three pings to the answering client', () => answering.pings() >= 3);
      await silent.closed;
      assert.equal(silent.pings(), 1, 'closed after the first unanswered ping');
      assert.equal(answering.ws.readyState, WebSocket.OPEN, 'the answering client stays connected');
      answering.ws.terminate();
    });
  });
}

/** The status page in a real browser, under the custom path, on both transports. */
describe('status page under SOCKETIO_PATH in headless Chromium', { skip: needs('chromium') }, () => {
  let browser: Browser;
  const gateways: Gateway[] = [];
  before(async () => {
    for (const transport of TRANSPORTS) gateways.push(await startGateway({ env: env(transport) }));
    browser = await chromium.launch({
      executablePath: toolPath('chromium'),
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    await browser?.close();
    await Promise.all(gateways.map((g) => g.stop()));
  });

  it('connects through the path and shows a publish to the demo room', async () => {
    for (const [i, gw] of gateways.entries()) {
      const page = await browser.newPage();
      const requested: string[] = [];
      page.on('request', (r) => requested.push(new URL(r.url()).pathname));
      page.on('websocket', (ws) => requested.push(new URL(ws.url()).pathname));
      await page.goto(gw.url);
      await page.waitForFunction((id) => document.getElementById('via')?.textContent === id, gw.replicaId);
      assert.ok(requested.includes(`${PATH}/socket.io.js`), `the client came from the path: ${requested.join(' ')}`);
      assert.ok(requested.includes(`${PATH}/`), `the page connected under the path: ${requested.join(' ')}`);
      assert.ok(!requested.some((p) => p.startsWith('/socket.io/')), `nothing went to the default path: ${requested.join(' ')}`);
      // The page subscribes right after it connects; publish until the score shows, as its ack is not visible.
      const score = { home: i + 1, away: 0 };
      await waitFor('the score on the page', async () => {
        await publish(gw.url, { room: 'demo:live-score', event: 'score', data: score }, KEY);
        return (await page.textContent('#score')) === `${score.home} : 0`;
      });
      await page.close();
    }
  });
});

describe('REDIS_CLUSTER_NODES written host:port', () => {
  let cluster: RedisCluster;
  const gateways: Gateway[] = [];
  const clients: TestClient[] = [];
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(gateways.map((g) => g.stop()));
    await cluster?.stop();
  });

  it('two gateways seeded with two of three masters as host:port share a room', async () => {
    cluster = await startRedisCluster(3, 0);
    const seeds = cluster.nodes.slice(0, 2).map((n) => `127.0.0.1:${n.port}`).join(',');
    for (const transport of TRANSPORTS) {
      gateways.push(await startGateway({ env: { TRANSPORT: transport, PUBLISH_KEYS: KEY, REDIS_MODE: 'sharded', REDIS_CLUSTER_NODES: seeds } }));
    }
    for (const g of gateways) {
      await waitFor(`${g.replicaId} ready on the cluster`, async () => (await get(`${g.url}/readyz`)).status === 200);
      const c = await connectClient(g.url);
      clients.push(c);
      assert.equal(((await c.subscribe('scores:cluster')) as { ok: boolean }).ok, true);
    }
    assert.equal((await publish(gateways[0]!.url, { room: 'scores:cluster', event: 'score', data: 1 }, KEY)).status, 200);
    for (const c of clients) await c.waitFor('the publish from the other replica', (r) => r.event === 'score' && r.data === 1);
  });
});
