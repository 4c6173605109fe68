/**
 * A small HTTP/1.1 client for the harness's publisher: a few persistent connections per server,
 * requests pipelined on them, responses matched in order. `fetch` costs tens of microseconds of
 * CPU per request; at thousands of publishes a second on the client core that made the publisher,
 * not the server under test, the first thing to saturate. Plain http:// only (the harness targets
 * local clusters; the k6 scripts cover TLS deployments).
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

  constructor(private readonly host: string, private readonly port: number) {}

  get inFlight(): number {
    return this.queue.length;
  }

  request(head: string, body: Buffer): Promise<HttpAnswer> {
    const socket = this.socket ?? this.open();
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject });
      socket.write(head);
      socket.write(body);
    });
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
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      if (/\r\ntransfer-encoding:/i.test(head)) {
        // Not used by the servers the harness targets; fail loudly rather than misparse.
        this.socket?.destroy(new Error('chunked responses are not supported'));
        return;
      }
      const total = end + HEADER_END.length + length;
      if (this.buf.length < total) return;
      const body = this.buf.toString('utf8', end + HEADER_END.length, total);
      this.buf = this.buf.subarray(total);
      this.queue.shift()?.resolve({ status, body });
      if (/\r\nconnection:\s*close/i.test(head)) {
        this.socket?.destroy();
        return;
      }
    }
  }
}

/** Connections to one server; each request goes to the connection with the fewest in flight. */
export class HttpPipeline {
  private readonly conns: Connection[];
  private readonly host: string;

  constructor(base: string, connections = 8) {
    const u = new URL(base);
    if (u.protocol !== 'http:') throw new Error(`HttpPipeline: only http:// is supported, not ${u.protocol}`);
    this.host = u.host;
    this.conns = Array.from({ length: connections }, () => new Connection(u.hostname, Number(u.port || 80)));
  }

  post(path: string, json: string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
    const body = Buffer.from(json);
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    const head = `POST ${path} HTTP/1.1\r\nHost: ${this.host}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${extra}\r\n`;
    let best = this.conns[0]!;
    for (const c of this.conns) if (c.inFlight < best.inFlight) best = c;
    return best.request(head, body);
  }

  close(): void {
    for (const c of this.conns) c.close();
  }
}
