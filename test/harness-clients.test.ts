import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { HttpPipeline } from '../loadtest/harness/http-pipeline.js';
import { signedPublish } from '../loadtest/harness/pusher.js';
import { fanoutLatency, SCORE_FIELDS } from '../loadtest/harness/scenarios.js';
import { Workers } from '../loadtest/harness/workers.js';
import { WsClient } from '../loadtest/harness/wsclient.js';
import { SseClient } from '../loadtest/harness/sseclient.js';
import { startGateway } from './helpers/gateway.js';
import { waitFor } from './helpers/wait.js';

/**
 * The harness's own protocol clients against real peers: the `ws` package's server for the
 * WebSocket client (it rejects unmasked or malformed client frames), a raw TCP server for what a
 * conforming server never sends, and Node's http server for the pipelined publisher.
 */

interface Received {
  texts: string[];
  closed: string | undefined;
}

/** Every client the tests open, closed at the end whatever state a test left it in. */
const clients: WsClient[] = [];
after(() => {
  for (const c of clients) c.terminate();
});

function client(url: string): { ws: WsClient; got: Received; opened: Promise<void> } {
  const got: Received = { texts: [], closed: undefined };
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  const ws = new WsClient(url, {
    open: () => open(),
    text: (buf, start, end) => got.texts.push(buf.toString('utf8', start, end)),
    closed: (reason) => (got.closed = reason),
  });
  clients.push(ws);
  return { ws, got, opened };
}

describe('harness WebSocket client (loadtest/harness/wsclient.ts)', () => {
  let wss: WebSocketServer;
  let url: string;
  const peers: WebSocket[] = [];
  const fromClient: string[] = [];
  const pongs: string[] = [];

  before(async () => {
    wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(wss, 'listening');
    url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/socket.io/?EIO=4&transport=websocket`;
    wss.on('connection', (peer) => {
      peers.push(peer);
      peer.on('message', (m, isBinary) => fromClient.push(isBinary ? '(binary)' : m.toString()));
      peer.on('pong', (p) => pongs.push(p.toString()));
    });
  });
  after(() => {
    for (const p of peers) p.terminate();
    wss.close();
  });

  it('sends masked frames of every length encoding that a strict server accepts', async () => {
    const { ws, opened } = client(url);
    await opened;
    const sizes = [5, 125, 126, 300, 65_535, 70_000];
    for (const n of sizes) ws.send('x'.repeat(n - 1) + 'y');
    await waitFor('server received every frame', () => fromClient.length >= sizes.length);
    assert.deepEqual(fromClient.map((m) => m.length), sizes);
    assert.ok(fromClient.every((m) => m.endsWith('y') && m.startsWith('x')));
    ws.terminate();
  });

  it('receives small, 16-bit and 64-bit length frames, bursts split across reads, and fragmented messages', async () => {
    const { ws, got, opened } = client(url);
    await opened;
    const peer = peers.at(-1)!;
    const burst = Array.from({ length: 2000 }, (_, i) => `42["load",{"seq":${i}}]`);
    for (const m of burst) peer.send(m);
    peer.send('a'.repeat(300));
    peer.send('b'.repeat(200_000));
    peer.send('frag-', { fin: false });
    peer.send('ment-', { fin: false });
    peer.send('ed', { fin: true });
    peer.send(Buffer.from([1, 2, 3]), { binary: true });
    peer.send('last');
    await waitFor('last message received', () => got.texts.at(-1) === 'last');
    assert.deepEqual(got.texts.slice(0, burst.length), burst);
    assert.deepEqual(
      got.texts.slice(burst.length).map((t) => (t.length > 20 ? `${t[0]}×${t.length}` : t)),
      ['a×300', 'b×200000', 'frag-ment-ed', 'last'],
      'binary frames are skipped, fragments joined',
    );
    assert.equal(got.closed, undefined);
    ws.terminate();
  });

  it('answers pings with the same payload and reports a close frame with its code', async () => {
    const { got, opened } = client(url);
    await opened;
    const peer = peers.at(-1)!;
    peer.ping('are-you-there');
    await waitFor('pong received', () => pongs.includes('are-you-there'));
    peer.close(4001, 'bye');
    await waitFor('closed', () => got.closed !== undefined);
    assert.equal(got.closed, 'close 4001');
  });

  it('refuses to send before the handshake has completed', () => {
    const { ws } = client(url);
    assert.throws(() => ws.send('too early'), /WebSocket is handshake/);
    ws.terminate();
  });

  describe('against a server that breaks the protocol', () => {
    let raw: TcpServer;
    let rawUrl: string;
    /** What the raw server does once it has read the request: answers with `respond(key)`. */
    let respond: (key: string) => Buffer[];

    before(async () => {
      raw = createTcpServer((sock) => {
        let head = '';
        sock.on('data', (d) => {
          head += d.toString('latin1');
          if (!head.includes('\r\n\r\n')) return;
          const key = /sec-websocket-key: (\S+)/i.exec(head)![1]!;
          for (const b of respond(key)) sock.write(b);
        });
        sock.on('error', () => {});
      });
      raw.listen(0, '127.0.0.1');
      await once(raw, 'listening');
      rawUrl = `ws://127.0.0.1:${(raw.address() as AddressInfo).port}/`;
    });
    after(() => raw.close());

    const accept = (key: string) => createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    const upgraded = (key: string, acceptValue = accept(key)) =>
      Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptValue}\r\n\r\n`);

    const cases: [string, (key: string) => Buffer[], RegExp][] = [
      ['a refused upgrade', () => [Buffer.from('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n')], /^handshake: HTTP\/1\.1 404 Not Found$/],
      ['a wrong Sec-WebSocket-Accept', (key) => [upgraded(key, 'd3Jvbmc=')], /^handshake: bad Sec-WebSocket-Accept$/],
      ['a masked frame', (key) => [upgraded(key), Buffer.from([0x81, 0x82, 1, 2, 3, 4, 0x69 ^ 1, 0x69 ^ 2])], /^protocol: masked frame from server$/],
      ['an unknown opcode', (key) => [upgraded(key), Buffer.from([0x83, 0x00])], /^protocol: opcode 3$/],
      ['a continuation without a message', (key) => [upgraded(key), Buffer.from([0x80, 0x01, 0x61])], /^protocol: continuation without a message$/],
      ['a frame over the size bound', (key) => [upgraded(key), Buffer.from([0x81, 0x7f, 0, 0, 0, 1, 0, 0, 0, 0])], /^protocol: frame of 4294967296 bytes$/],
    ];
    for (const [what, answer, expected] of cases) {
      it(`closes on ${what}, with a reason`, async () => {
        respond = answer;
        const { got } = client(rawUrl);
        await waitFor('closed', () => got.closed !== undefined);
        assert.match(got.closed!, expected);
        assert.deepEqual(got.texts, []);
      });
    }

    it('parses frames that arrive together with the handshake answer', async () => {
      respond = (key) => [Buffer.concat([upgraded(key), Buffer.from([0x81, 0x02, 0x34, 0x30]), Buffer.from([0x81, 0x01, 0x32])])];
      const { got } = client(rawUrl);
      await waitFor('two frames', () => got.texts.length === 2);
      assert.deepEqual(got.texts, ['40', '2']);
    });
  });
});

describe('harness HTTP publisher connection (loadtest/harness/http-pipeline.ts)', () => {
  let server: ReturnType<typeof createHttpServer>;
  let base: string;
  let closeAfter = Infinity;
  let seen = 0;

  before(async () => {
    server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen++;
        const n = (JSON.parse(body) as { n: number }).n;
        // Odd numbers are refused, so statuses and bodies must stay matched to their requests.
        res.writeHead(n % 2 ? 400 : 200, { 'content-type': 'application/json', ...(seen >= closeAfter ? { connection: 'close' } : {}) });
        res.end(JSON.stringify({ echo: n }));
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it('pipelines requests over a few connections and matches every answer to its request', async () => {
    const p = new HttpPipeline(base, 3);
    const answers = await Promise.all(Array.from({ length: 300 }, (_, n) => p.post('/v1/publish', JSON.stringify({ n }))));
    answers.forEach((a, n) => {
      assert.equal(a.status, n % 2 ? 400 : 200);
      assert.deepEqual(JSON.parse(a.body), { echo: n });
    });
    p.close();
  });

  it('reads chunked answers as well as sized ones', async () => {
    const chunked = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' }); // no length: chunked
        res.write('{"part":');
        res.end('"two"}');
      });
    });
    chunked.listen(0, '127.0.0.1');
    await once(chunked, 'listening');
    const p = new HttpPipeline(`http://127.0.0.1:${(chunked.address() as AddressInfo).port}`, 1);
    const answers = await Promise.all([p.post('/', '{}'), p.post('/', '{}'), p.post('/', '{}')]);
    assert.deepEqual(answers.map((a) => [a.status, JSON.parse(a.body)]), Array(3).fill([200, { part: 'two' }]));
    p.close();
    chunked.close();
  });

  it('follows a server that closes the connection: answered requests resolve, the next ones reconnect', async () => {
    seen = 0;
    closeAfter = 2;
    const p = new HttpPipeline(base, 1);
    const first = await p.post('/v1/publish', JSON.stringify({ n: 0 }));
    const second = await p.post('/v1/publish', JSON.stringify({ n: 2 })); // answered with connection: close
    closeAfter = Infinity;
    const third = await p.post('/v1/publish', JSON.stringify({ n: 4 })); // on a new connection
    assert.deepEqual([first.status, second.status, third.status], [200, 200, 200]);
    assert.deepEqual(JSON.parse(third.body), { echo: 4 });
    p.close();
  });

  it('rejects what is in flight when the server goes away, and refuses https', async () => {
    const gone = createTcpServer((s) => s.destroy());
    gone.listen(0, '127.0.0.1');
    await once(gone, 'listening');
    const p = new HttpPipeline(`http://127.0.0.1:${(gone.address() as AddressInfo).port}`, 1);
    await assert.rejects(p.post('/v1/publish', '{}'), /connection closed|ECONNRESET|EPIPE/);
    p.close();
    gone.close();
    assert.throws(() => new HttpPipeline('https://127.0.0.1:1'), /only http:\/\/ is supported/);
  });
});

describe('harness Pusher client and signed publisher (loadtest/harness/pusher.ts, worker.ts)', () => {
  it("signs a publish as Pusher's REST API reference example does", () => {
    // The example in pusher.com/docs/channels/library_auth_reference/rest-api (app 3, its key and secret).
    const { path, body } = signedPublish({ id: '3', key: '278d425bdf160c739803', secret: '7ad3773142a6692b25b8' }, 'project-3', 'foo', '{"some":"data"}', 1353088179_000);
    assert.equal(body, '{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}');
    assert.equal(path, '/apps/3/events?auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c');
  });

  it('subscribes, answers pings and counts every event once, published one signed request per connection', async () => {
    const app = { id: 'app-id', key: 'app-key', secret: 'app-secret' };
    const channels = new Map<string, Set<WebSocket>>();
    let pongs = 0;
    let requests = 0;
    // A Pusher-protocol server: one that checks signatures and closes every HTTP connection, as soketi does.
    const http = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        requests++;
        const u = new URL(req.url!, 'http://x');
        const query = [...u.searchParams].filter(([k]) => k !== 'auth_signature').sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}`).join('&');
        const good = createHmac('sha256', app.secret).update(`POST\n${u.pathname}\n${query}`).digest('hex') === u.searchParams.get('auth_signature') && createHash('md5').update(body).digest('hex') === u.searchParams.get('body_md5');
        if (!good) return void res.writeHead(401, { connection: 'close' }).end('{}');
        const m = JSON.parse(body) as { name: string; channels: string[]; data: string };
        for (const ch of m.channels) for (const peer of channels.get(ch) ?? []) peer.send(JSON.stringify({ event: m.name, channel: ch, data: m.data }));
        res.writeHead(200, { connection: 'close', 'content-type': 'application/json' }).end('{"ok":true}');
      });
    });
    const wss = new WebSocketServer({ server: http });
    wss.on('connection', (peer) => {
      peer.send(JSON.stringify({ event: 'pusher:connection_established', data: JSON.stringify({ socket_id: '1.1', activity_timeout: 30 }) }));
      peer.send('{"event":"pusher:ping","data":{}}');
      peer.on('message', (raw) => {
        const m = JSON.parse(raw.toString()) as { event: string; data?: { channel?: string } };
        if (m.event === 'pusher:pong') pongs++;
        if (m.event !== 'pusher:subscribe' || !m.data?.channel) return;
        const set = channels.get(m.data.channel) ?? new Set();
        channels.set(m.data.channel, set.add(peer));
        peer.send(JSON.stringify({ event: 'pusher_internal:subscription_succeeded', channel: m.data.channel }));
      });
    });
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    const workers = await Workers.start(1);
    try {
      const r = await fanoutLatency(workers, { urls: [`http://127.0.0.1:${(http.address() as AddressInfo).port}`], pusher: app }, { subscribers: 10, rate: 40, seconds: 1 });
      assert.equal(r.subscribers, 10);
      assert.equal(r.published, 40);
      assert.equal(r.publishFailures, 0);
      assert.equal(requests, 40);
      assert.deepEqual([r.delivered, r.missing, r.duplicates], [400, 0, 0]);
      assert.ok(r.latencyMs.samples > 0);
      assert.equal(pongs, 10);
      assert.ok(r.client.utilisation >= 0);
    } finally {
      await workers.stop();
      for (const p of wss.clients) p.terminate();
      wss.close();
      http.close();
    }
  });
});

describe('harness fanout-latency with deltas (DELTA=1, loadtest/harness/worker.ts)', () => {
  it('applies every delta on its base, misses nothing, and reports fewer bytes per delivery than whole messages', async () => {
    const key = 'harness-delta-key-0123456789';
    const gw = await startGateway({ env: { PUBLISH_KEYS: key, HISTORY_ROOMS: 'load:* delta' } });
    const workers = await Workers.start(1);
    try {
      const target = { urls: [gw.url], key };
      const whole = await fanoutLatency(workers, target, { subscribers: 20, rate: 50, seconds: 1, score: true });
      const delta = await fanoutLatency(workers, target, { subscribers: 20, rate: 50, seconds: 1, delta: true });
      for (const r of [whole, delta]) assert.deepEqual([r.published, r.delivered, r.missing, r.duplicates], [50, 1000, 0, 0], JSON.stringify(r));
      assert.equal(delta.wrongBases, 0);
      // Each subscriber's first message is whole, and the second (it joins the deltas after it).
      assert.ok(delta.deltas! >= 20 * 45, `deltas applied: ${delta.deltas}`);
      assert.ok(delta.bytesPerDelivery < whole.bytesPerDelivery / 2, `${delta.bytesPerDelivery} B per delivery with deltas, ${whole.bytesPerDelivery} B whole`);
      console.log(`# harness: a ${JSON.stringify({ ...SCORE_FIELDS, seq: 50, sent: Date.now() }).length}-byte score, two fields changing: ${whole.bytesPerDelivery} B per delivery whole, ${delta.bytesPerDelivery} B with deltas`);
    } finally {
      await workers.stop();
      await gw.stop();
    }
  });
});

/**
 * The harness's event-stream reader (sseclient.ts) against a raw TCP server that writes a chunked
 * `text/event-stream` response one awkward piece at a time: a chunk-size line, a multi-byte
 * character and an event split across reads, CRLF and LF line ends, a comment, `retry:`, `id:`
 * carried over to later events, a multi-line `data:`, then the last chunk. And a refusal's body.
 */
describe('harness event-stream reader (loadtest/harness/sseclient.ts)', () => {
  let server: TcpServer;
  let port: number;
  const requests: string[] = [];
  const chunk = (text: string) => {
    const bytes = Buffer.from(text);
    return Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]);
  };
  before(async () => {
    server = createTcpServer((sock) => {
      sock.once('data', (req) => {
        requests.push(req.toString());
        if (req.toString().includes('room=refused')) {
          const body = '{"error":{"code":"too_many_streams","message":"no"}}';
          sock.end(`HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
          return;
        }
        const body = Buffer.concat([
          chunk('retry: 1000\n\n:\n\nevent: herald:hello\ndata: {"data":{"replica":"r"}}\n\n'),
          chunk('id: t:1-0\r\nevent: m\r\ndata: {"data":"é☃"}\r\n\r\n'),
          chunk('event: m\ndata: line one\ndata: line two\n\nid: t:2-0\nevent: m\ndata: 3\n\n'),
          Buffer.from('0\r\n\r\n'),
        ]);
        const head = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
        const all = Buffer.concat([head, body]);
        // One byte at a time around the awkward places, then the rest: each write a read of its own.
        const cuts = [head.length - 2, head.length + 1, all.indexOf(Buffer.from('é')) + 1, all.indexOf(Buffer.from('☃')) + 2, all.indexOf(Buffer.from('line two')), all.length - 3];
        let at = 0;
        const next = () => {
          const cut = cuts.shift();
          sock.write(all.subarray(at, cut ?? all.length));
          at = cut ?? all.length;
          if (cut !== undefined) setTimeout(next, 20);
        };
        next();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => server.close());

  it('reads events, ids and data across split reads and chunks, and a refusal', async () => {
    const got: [string, string, string][] = [];
    let status = 0;
    let closed: string | undefined;
    new SseClient(`http://127.0.0.1:${port}/v1/stream?room=a`, {
      open: (s) => (status = s),
      event: (name, data, id) => got.push([name, data, id]),
      closed: (reason) => (closed = reason),
    }, { headers: { 'last-event-id': 't:0-1' } });
    await waitFor('the end of the stream', () => closed);
    assert.equal(status, 200);
    assert.equal(closed, 'stream ended');
    assert.deepEqual(got, [
      ['herald:hello', '{"data":{"replica":"r"}}', ''],
      ['m', '{"data":"é☃"}', 't:1-0'],
      ['m', 'line one\nline two', 't:1-0'],
      ['m', '3', 't:2-0'],
    ]);
    assert.match(requests[0]!, /^GET \/v1\/stream\?room=a HTTP\/1\.1\r\n/);
    assert.match(requests[0]!, /\r\naccept: text\/event-stream\r\n/);
    assert.match(requests[0]!, /\r\nlast-event-id: t:0-1\r\n/);

    let refusal: { status: number; body: string | undefined } | undefined;
    let refusedStatus = 0;
    new SseClient(`http://127.0.0.1:${port}/v1/stream?room=refused`, {
      open: (s) => (refusedStatus = s),
      event: () => assert.fail('no events from a refusal'),
      closed: (_reason, body) => (refusal = { status: refusedStatus, body }),
    });
    const r = await waitFor('the refusal', () => refusal);
    assert.equal(r.status, 429);
    assert.equal(JSON.parse(r.body!).error.code, 'too_many_streams');
  });
});
