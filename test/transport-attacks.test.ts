import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import type { Socket as NetSocket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { connectClient, type ClientTransport, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { rawHttp, slowHttp } from './helpers/raw.js';

const SECRET = 'test-jwt-secret-0123456789-abcdefghij';
const ROOM = 'bin:attachments';

const publishToken = () =>
  new SignJWT({ sub: 'publisher', publish: ['bin:*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));

/** Whatever socket.io-client hands out for a binary attachment (Buffer, ArrayBuffer or a view), as a Buffer. */
function bytesOf(x: unknown): Buffer | undefined {
  if (Buffer.isBuffer(x)) return x;
  if (x instanceof ArrayBuffer) return Buffer.from(x);
  if (ArrayBuffer.isView(x)) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  return undefined;
}

interface Exchange {
  status: number | string;
  headers: IncomingHttpHeaders;
  socket: NetSocket | undefined;
}

/** One POST /v1/publish through `agent`; a socket error becomes its code (ECONNRESET, ...). */
function post(agent: Agent, port: number, extra: Record<string, string>): Promise<Exchange> {
  const body = JSON.stringify({ room: 'ka:room', event: 'e', data: 1 });
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/v1/publish', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...extra } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, socket }));
      },
    );
    let socket: NetSocket | undefined;
    req.on('socket', (s: NetSocket) => (socket = s));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ status: err.code ?? err.message, headers: {}, socket }));
    req.end(body);
  });
}

/** Status, headers (names lower-case, repeats kept) and body of a raw HTTP answer. */
function parseHead(raw: string): { status: number; headers: [string, string][]; body: string } {
  const [head = '', body = ''] = raw.split('\r\n\r\n', 2);
  const [line = '', ...rest] = head.split('\r\n');
  const headers = rest.map((h) => {
    const i = h.indexOf(':');
    return [h.slice(0, i).trim().toLowerCase(), h.slice(i + 1).trim()] as [string, string];
  });
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(line)?.[1] ?? 0), headers, body };
}

/** A WebSocket upgrade the server refuses: its HTTP status and body, or `upgraded` if it was accepted. */
function upgrade(url: string, headers: Record<string, string>): Promise<{ status: number | 'upgraded'; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`, { headers });
    ws.on('open', () => {
      ws.terminate();
      resolve({ status: 'upgraded', body: '' });
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
        ws.terminate();
      });
    });
    ws.on('error', (err) => reject(err));
  });
}

for (const transport of ['uws', 'node'] as const) {
  describe(`transport under attack (TRANSPORT=${transport})`, () => {
    let gw: Gateway;
    const clients: TestClient[] = [];
    const extra: Gateway[] = [];

    before(async () => {
      gw = await startGateway({
        env: { TRANSPORT: transport, JWT_SECRET: SECRET, ALLOW_ANONYMOUS: 'true', PUBLIC_ROOMS: 'bin:*', HISTORY_ROOMS: 'bin:kept:*', CLIENT_RATE: '1000', CLIENT_BURST: '1000' },
      });
      assert.equal((await gw.waitForLog('listening', (l) => l.msg === 'listening')).transport, transport);
    });
    after(async () => {
      for (const c of clients) c.close();
      await Promise.all([gw?.stop(), ...extra.map((g) => g.stop())]);
    });

    it('delivers every byte of a multi-attachment publish to WebSocket and long-polling subscribers', async () => {
      const connect = async (t: ClientTransport, auth?: Record<string, unknown>) => {
        const c = await connectClient(gw.url, { transport: t, auth });
        clients.push(c);
        return c;
      };
      const subscribers = { websocket: await connect('websocket'), polling: await connect('polling') };
      for (const s of Object.values(subscribers)) assert.deepEqual(await s.subscribe(ROOM), { ok: true, room: ROOM });
      const token = await publishToken();
      for (const via of ['websocket', 'polling'] as const) {
        const publisher = await connect(via, { token });
        // Three attachments of different sizes, so an emptied or swapped one cannot pass for another.
        const parts = [randomBytes(1000), randomBytes(2000), randomBytes(3000)] as const;
        const label = `from ${via}`;
        const ack = (await publisher.socket.timeout(5000).emitWithAck('publish', { room: ROOM, event: 'blob', data: { label, parts } })) as { ok: boolean };
        assert.equal(ack.ok, true, `publish ack: ${JSON.stringify(ack)}`);
        for (const [name, sub] of Object.entries(subscribers)) {
          const got = await sub.waitFor(`blob ${label} on ${name}`, (r) => r.event === 'blob' && (r.data as { label?: string }).label === label);
          const received = (got.data as { parts: unknown[] }).parts.map(bytesOf);
          assert.deepEqual(
            received.map((b) => b?.length),
            parts.map((p) => p.length),
            `attachment sizes published ${label} as received on ${name}`,
          );
          received.forEach((b, i) => assert.ok(b!.equals(parts[i]!), `attachment ${i} published ${label}, received on ${name}: bytes differ`));
        }
      }
    });

    it('refuses binary data in a history room, whose history keeps JSON, with bad_request', async () => {
      const publisher = await connectClient(gw.url, { auth: { token: await publishToken() } });
      clients.push(publisher);
      const ack = (await publisher.socket
        .timeout(5000)
        .emitWithAck('publish', { room: 'bin:kept:1', event: 'blob', data: { parts: [randomBytes(10)] } })) as { ok: boolean; error?: { code: string } };
      assert.deepEqual([ack.ok, ack.error?.code], [false, 'bad_request']);
      const plain = (await publisher.socket.timeout(5000).emitWithAck('publish', { room: 'bin:kept:1', event: 'note', data: { text: 'json' } })) as { ok: boolean };
      assert.equal(plain.ok, true, 'JSON still goes into the history room');
    });

    it('says Connection: close whenever it closes, so keep-alive clients never reuse a closed socket', async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        // Every other request asks to close, as node-fetch 3 does on every request (and Node's
        // agent still pools the socket unless the answer says close too).
        const asked: boolean[] = [];
        const exchanges: Exchange[] = [];
        for (let i = 0; i < 6; i++) {
          asked.push(i % 2 === 1);
          exchanges.push(await post(agent, gw.port, asked[i] ? { connection: 'close' } : {}));
        }
        assert.deepEqual(
          exchanges.map((e) => e.status),
          [200, 200, 200, 200, 200, 200],
        );
        exchanges.forEach((e, i) => {
          const says = e.headers.connection === 'close';
          if (asked[i]) assert.ok(says, `request ${i} asked to close; the answer must say so (it said ${e.headers.connection})`);
          const next = exchanges[i + 1];
          // A response without "close" left the connection open: the next request reused it.
          if (next) assert.equal(next.socket === e.socket, !says, `request ${i + 1} on ${says ? 'a new' : 'the same'} connection`);
        });
      } finally {
        agent.destroy();
      }

      // Raw: the header exactly once, also where herald closes on its own (413 past the discard
      // cap) and where a request that asked to close meets that, and on Engine.IO's routes.
      const once = async (what: string, req: string, status: number) => {
        const answer = parseHead(await rawHttp(gw.port, req));
        assert.equal(answer.status, status, `${what}: ${answer.status}`);
        const values = answer.headers.filter(([k]) => k === 'connection').map(([, v]) => v.toLowerCase());
        assert.deepEqual(values, ['close'], `${what}: connection headers ${JSON.stringify(values)}`);
      };
      await once('healthz asking to close', 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 200);
      await once('a body past the cap', 'POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{', 413);
      await once('a body past the cap, asking to close', 'POST /v1/publish HTTP/1.1\r\nHost: x\r\nConnection: Close\r\nContent-Length: 100000000\r\n\r\n{', 413);
      await once('an Engine.IO handshake asking to close', 'GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 200);
    });

    it('refuses a WebSocket handshake with 403 and the Engine.IO error body', async () => {
      const refusing = await startGateway({
        env: { TRANSPORT: transport, CORS_ORIGINS: 'https://app.example.com', CONNECT_RATE_PER_IP: '1', CONNECT_BURST_PER_IP: '1' },
      });
      extra.push(refusing);
      // The Origin check comes before the per-IP limit and spends no token.
      assert.deepEqual(await upgrade(refusing.url, { origin: 'https://evil.example.com' }), {
        status: 403,
        body: JSON.stringify({ code: 4, message: 'origin not allowed' }),
      });
      // One token, one a second: of a quick burst the first is let in and (nearly) all others refused.
      const burst = await Promise.all(Array.from({ length: 8 }, () => upgrade(refusing.url, { origin: 'https://app.example.com' })));
      const refused = burst.filter((r) => r.status !== 'upgraded');
      assert.ok(refused.length >= 1, `some of the burst refused: ${JSON.stringify(burst)}`);
      for (const r of refused) assert.deepEqual(r, { status: 403, body: JSON.stringify({ code: 4, message: 'rate_limited' }) });
    });
  });
}

/**
 * What HTTP_REQUEST_TIMEOUT_SECONDS promises on each transport, with requests that trickle in a
 * byte every second, so no idle timeout would ever cut them. A timeout above the 10 s uWS gives a
 * request on its own (8-12 s: its timer has 4 s resolution) tells the two apart.
 */
describe('slow requests (HTTP_REQUEST_TIMEOUT_SECONDS=14)', () => {
  const gateways: Record<string, Gateway> = {};
  const TIMEOUT_S = 14;
  /** Longest any of these may take to be answered or closed. */
  const BOUND_MS = 30_000;

  before(async () => {
    for (const transport of ['uws', 'node']) {
      gateways[transport] = await startGateway({ env: { TRANSPORT: transport, HTTP_REQUEST_TIMEOUT_SECONDS: String(TIMEOUT_S) } });
    }
  });
  after(async () => {
    await Promise.all(Object.values(gateways).map((g) => g.stop()));
  });

  it('answers a slow body 408 on both transports, slow headers 408 on node; uWS closes slow headers itself', { timeout: 60_000 }, async () => {
    const body = (port: number) =>
      slowHttp(port, 'POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n', 'x', { maxMs: BOUND_MS });
    const headers = (port: number) => slowHttp(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n', 'X-Slow: 1\r\n', { maxMs: BOUND_MS });
    const [uwsBody, nodeBody, uwsHeaders, nodeHeaders] = await Promise.all([
      body(gateways.uws!.port),
      body(gateways.node!.port),
      headers(gateways.uws!.port),
      headers(gateways.node!.port),
    ]);
    for (const [what, r] of [['uws body', uwsBody], ['node body', nodeBody], ['node headers', nodeHeaders]] as const) {
      assert.equal(r.closed, true, `${what}: closed within ${BOUND_MS} ms`);
      const answer = parseHead(r.received);
      assert.equal(answer.status, 408, `${what}: ${JSON.stringify(r.received.slice(0, 200))}`);
      assert.ok(answer.headers.some(([k, v]) => k === 'connection' && v.toLowerCase() === 'close'), `${what}: says Connection: close`);
    }
    const uwsBodyAnswer = parseHead(uwsBody.received);
    assert.equal(JSON.parse(uwsBodyAnswer.body).error.code, 'request_timeout');
    // Documented: uWS ends a request whose headers are not in within its own fixed 10 s, unanswered.
    assert.deepEqual(uwsHeaders, { closed: true, received: '' });
  });
});
