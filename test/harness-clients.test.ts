import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { HttpPipeline } from '../loadtest/harness/http-pipeline.js';
import { WsClient } from '../loadtest/harness/wsclient.js';
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
