/**
 * A small HTTP/1.1 client for the harness's publisher: a few persistent connections per server,
 * requests pipelined on them, responses matched in order. `fetch` costs tens of microseconds of
 * CPU per request; at thousands of publishes a second on the client core that made the publisher,
 * not the server under test, the first thing to saturate. Plain http:// only (the harness targets
 * local clusters; the k6 scripts cover TLS deployments); bodies by Content-Length or chunked.
 */
import { connect, type Socket } from 'node:net';

export interface HttpAnswer {
  status: number;
  body: string;
}

interface Pending {
  resolve(a: HttpAnswer): void;
  reject(e: Error): void;
}

const HEADER_END = Buffer.from('\r\n\r\n');

class Connection {
  private socket: Socket | undefined;
  private readonly queue: Pending[] = [];
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly host: string, private readonly port: number, private readonly settled: () => void = () => {}) {}

  get inFlight(): number {
    return this.queue.length;
  }

  request(head: string, body: Buffer): Promise<HttpAnswer> {
    const socket = this.socket ?? this.open();
    return new Promise<HttpAnswer>((resolve, reject) => {
      this.queue.push({ resolve, reject });
      socket.write(head);
      socket.write(body);
    }).finally(this.settled);
  }

  close(): void {
    this.socket?.destroy();
  }

  private open(): Socket {
    const socket = connect({ host: this.host, port: this.port });
    socket.setNoDelay(true);
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => this.data(chunk));
    const fail = (err: Error) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      socket.destroy();
      for (const p of this.queue.splice(0)) p.reject(err);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
    return socket;
  }

  private data(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      const end = this.buf.indexOf(HEADER_END);
      if (end < 0) return;
      const head = this.buf.toString('latin1', 0, end);
      const status = Number(head.slice(9, 12));
      let body: string;
      if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
        const chunked = dechunk(this.buf, end + HEADER_END.length);
        if (!chunked) return;
        body = chunked.body;
        this.buf = this.buf.subarray(chunked.end);
      } else {
        const total = end + HEADER_END.length + Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (this.buf.length < total) return;
        body = this.buf.toString('utf8', end + HEADER_END.length, total);
        this.buf = this.buf.subarray(total);
      }
      this.queue.shift()?.resolve({ status, body });
      if (/\r\nconnection:\s*close/i.test(head)) {
        // Whatever was pipelined behind this answer will not be answered on this connection.
        const socket = this.socket;
        this.socket = undefined;
        socket?.destroy();
        for (const p of this.queue.splice(0)) p.reject(new Error('connection closed by the server'));
        return;
      }
    }
  }
}

const CRLF = Buffer.from('\r\n');

/** A chunked body starting at `at`: its text and where it ends, or undefined while incomplete. */
function dechunk(buf: Buffer, at: number): { body: string; end: number } | undefined {
  const parts: Buffer[] = [];
  for (;;) {
    const eol = buf.indexOf(CRLF, at);
    if (eol < 0) return undefined;
    const size = parseInt(buf.toString('latin1', at, eol), 16);
    if (Number.isNaN(size)) throw new Error('bad chunk size');
    if (size === 0) {
      // No trailers from the servers the harness targets: the body ends with an empty line.
      if (buf.length < eol + 4) return undefined;
      return { body: Buffer.concat(parts).toString('utf8'), end: eol + 4 };
    }
    if (buf.length < eol + 2 + size + 2) return undefined;
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/**
 * Connections to one server; each request goes to the connection with the fewest in flight.
 *
 * With `pipeline: false` a connection carries one request at a time and the others wait here.
 * uWS (herald's default transport) closes a connection that sends a request while the answer to
 * the previous one is still pending in an asynchronous handler (a publish to a history room
 * waits for Redis): it supports pipelining only of requests answered synchronously.
 */
export class HttpPipeline {
  private readonly conns: Connection[];
  private readonly host: string;
  private readonly waiting: (() => void)[] = [];

  constructor(base: string, connections = 8, private readonly opts: { pipeline?: boolean } = {}) {
    const u = new URL(base);
    if (u.protocol !== 'http:') throw new Error(`HttpPipeline: only http:// is supported, not ${u.protocol}`);
    this.host = u.host;
    this.conns = Array.from({ length: connections }, () => new Connection(u.hostname, Number(u.port || 80), () => this.waiting.shift()?.()));
  }

  async post(path: string, json: string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
    const body = Buffer.from(json);
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    const head = `POST ${path} HTTP/1.1\r\nHost: ${this.host}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${extra}\r\n`;
    for (;;) {
      let best = this.conns[0]!;
      for (const c of this.conns) if (c.inFlight < best.inFlight) best = c;
      if (this.opts.pipeline !== false || best.inFlight === 0) return best.request(head, body);
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  close(): void {
    for (const c of this.conns) c.close();
  }
}

/**
 * One request on a connection of its own (`Connection: close`), for servers that refuse pipelined
 * requests (soketi closes the connection). Resolves with the status once the answer's head and
 * body have arrived; `localAddress` spreads the connections over loopback source addresses, so
 * sockets left in TIME_WAIT do not exhaust one address's ephemeral ports.
 */
export function postOnce(base: string, path: string, json: string, opts: { localAddress?: string; timeoutMs?: number } = {}): Promise<HttpAnswer> {
  const u = new URL(base);
  if (u.protocol !== 'http:') return Promise.reject(new Error(`postOnce: only http:// is supported, not ${u.protocol}`));
  const body = Buffer.from(json);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: u.hostname, port: Number(u.port || 80), localAddress: opts.localAddress });
    socket.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | undefined, answer?: HttpAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(answer!);
    };
    const timer = setTimeout(() => finish(new Error('postOnce: no answer in time')), opts.timeoutMs ?? 10_000);
    socket.once('connect', () => {
      socket.write(`POST ${path} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
      socket.write(body);
    });
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const end = buf.indexOf(HEADER_END);
      if (end < 0) return;
      const head = buf.toString('latin1', 0, end);
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1];
      // Without a length the body ends when the server closes ('close' below).
      if (length !== undefined && buf.length >= end + HEADER_END.length + Number(length)) {
        finish(undefined, { status: Number(head.slice(9, 12)), body: buf.toString('utf8', end + HEADER_END.length, end + HEADER_END.length + Number(length)) });
      }
    });
    socket.on('error', (err) => finish(err));
    socket.on('close', () => {
      const end = buf.indexOf(HEADER_END);
      if (end < 0) return finish(new Error('postOnce: connection closed before an answer'));
      finish(undefined, { status: Number(buf.toString('latin1', 9, 12)), body: buf.toString('utf8', end + HEADER_END.length) });
    });
  });
}
