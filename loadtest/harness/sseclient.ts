/**
 * A minimal Server-Sent Events reader for the load harness: one raw TCP socket per stream, an
 * HTTP/1.1 `GET` with `Accept: text/event-stream` (and `Last-Event-ID` when resuming), the
 * response head parsed once, then the body, chunked (`Transfer-Encoding: chunked`, what herald's
 * streams are on both transports) or not, split into `text/event-stream` lines and events as the
 * WHATWG format says: `event:`, `data:` (lines joined by `\n`), `id:` (the last one kept, as
 * EventSource's `lastEventId`), comments and `retry:` skipped. Bytes are split on `\n` before
 * any decoding, so a multi-byte character across reads or chunks stays whole.
 *
 * Like wsclient.ts it exists to keep the clients cheaper than the server they measure: no
 * EventSource object, no reconnect of its own (the harness decides when to come back and with
 * which `Last-Event-ID`).
 */
import { connect, type Socket } from 'node:net';

const LF = 0x0a;
const HEAD_END = Buffer.from('\r\n\r\n');
/** A longer response head, chunk-size line or event line than this is a protocol error. */
const MAX_LINE = 1024 * 1024;

export interface SseHandlers {
  /** The response head is in: 200 (a stream follows) or a refusal, whose JSON body is in `closed`. */
  open(status: number): void;
  /** One event; `data` is its `data:` lines joined, `id` the `lastEventId` in force after it. */
  event(name: string, data: string, id: string): void;
  /** Called once, whatever ended the stream; `body` is a refusal's body (status other than 200). */
  closed(reason: string, body?: string): void;
}

export interface SseOptions {
  localAddress?: string;
  headers?: Record<string, string>;
}

/** One stream. */
export class SseClient {
  private readonly socket: Socket;
  private state: 'head' | 'size' | 'data' | 'crlf' | 'raw' | 'closed' = 'head';
  private status = 0;
  private pending: Buffer | undefined;
  private chunkLeft = 0;
  /** The current line's bytes so far, across reads and chunks. */
  private line: Buffer[] = [];
  private lineBytes = 0;
  private eventName = '';
  private data: string | undefined;
  private refusal = '';
  /** EventSource's `lastEventId`: the last `id:` seen. */
  lastEventId = '';

  constructor(
    url: string,
    private readonly handlers: SseHandlers,
    opts: SseOptions = {},
  ) {
    const u = new URL(url);
    this.socket = connect({ host: u.hostname, port: Number(u.port || 80), ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    this.socket.setNoDelay(true);
    const headers = { host: u.host, accept: 'text/event-stream', ...opts.headers };
    this.socket.once('connect', () => {
      this.socket.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
    });
    this.socket.on('data', (buf: Buffer) => this.read(buf));
    this.socket.on('error', () => {});
    this.socket.on('close', () => this.end('connection closed'));
  }

  get isOpen(): boolean {
    return this.state !== 'closed' && this.state !== 'head' && this.status === 200;
  }

  terminate(): void {
    this.socket.destroy();
    this.end('terminated');
  }

  private end(reason: string): void {
    if (this.state === 'closed') return;
    const refused = this.status !== 200 && this.status !== 0;
    this.state = 'closed';
    this.socket.destroy();
    this.handlers.closed(reason, refused ? this.refusal : undefined);
  }

  private fail(reason: string): void {
    this.socket.destroy();
    this.end(reason);
  }

  private read(buf: Buffer): void {
    let i = 0;
    if (this.state === 'head') {
      const all = this.pending ? Buffer.concat([this.pending, buf]) : buf;
      const at = all.indexOf(HEAD_END);
      if (at === -1) {
        if (all.length > MAX_LINE) return this.fail('response head too long');
        this.pending = all;
        return;
      }
      this.pending = undefined;
      const head = all.toString('latin1', 0, at);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1];
      if (!status) return this.fail('not an HTTP response');
      this.status = Number(status);
      this.state = /\r\ntransfer-encoding:\s*chunked/i.test(head) ? 'size' : 'raw';
      this.handlers.open(this.status);
      buf = all;
      i = at + HEAD_END.length;
    }
    while (i < buf.length && this.state !== 'closed') {
      if (this.state === 'raw') {
        this.body(buf, i, buf.length);
        return;
      }
      if (this.state === 'data') {
        const n = Math.min(this.chunkLeft, buf.length - i);
        this.body(buf, i, i + n);
        i += n;
        this.chunkLeft -= n;
        if (this.chunkLeft === 0) this.state = 'crlf';
        continue;
      }
      // `size` or `crlf`: up to the end of a line.
      const nl = buf.indexOf(LF, i);
      const end = nl === -1 ? buf.length : nl;
      if (this.state === 'size') this.push(buf, i, end);
      i = end + 1;
      if (nl === -1) {
        if (this.lineBytes > 64) return this.fail('bad chunk size line');
        return;
      }
      if (this.state === 'crlf') {
        this.state = 'size';
        continue;
      }
      const size = parseInt(this.take().trim().split(';')[0]!, 16);
      if (!Number.isFinite(size)) return this.fail('bad chunk size');
      // The last chunk: the server ended the stream.
      if (size === 0) return this.end('stream ended');
      this.chunkLeft = size;
      this.state = 'data';
    }
  }

  private push(buf: Buffer, start: number, end: number): void {
    if (end <= start) return;
    this.line.push(buf.subarray(start, end));
    this.lineBytes += end - start;
  }

  /** The line gathered so far, decoded as UTF-8; starts the next one. */
  private take(): string {
    const text = this.line.length === 1 ? this.line[0]!.toString('utf8') : Buffer.concat(this.line).toString('utf8');
    this.line = [];
    this.lineBytes = 0;
    return text;
  }

  /** Body bytes `buf[start, end)`: event-stream lines (or a refusal's body). */
  private body(buf: Buffer, start: number, end: number): void {
    if (this.status !== 200) {
      if (this.refusal.length < 4096) this.refusal += buf.toString('utf8', start, end);
      return;
    }
    let i = start;
    while (i < end) {
      const nl = buf.indexOf(LF, i);
      if (nl === -1 || nl >= end) {
        // The slice is only valid during this call: copy what is kept.
        this.line.push(Buffer.from(buf.subarray(i, end)));
        this.lineBytes += end - i;
        if (this.lineBytes > MAX_LINE) this.fail('event line too long');
        return;
      }
      this.push(buf, i, nl);
      i = nl + 1;
      let line = this.take();
      if (line.endsWith('\r')) line = line.slice(0, -1);
      this.field(line);
    }
  }

  private field(line: string): void {
    if (line === '') {
      if (this.data !== undefined) this.handlers.event(this.eventName || 'message', this.data, this.lastEventId);
      this.eventName = '';
      this.data = undefined;
      return;
    }
    if (line.charCodeAt(0) === 0x3a) return; // a comment (heartbeat)
    const colon = line.indexOf(':');
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    if (name === 'data') this.data = this.data === undefined ? value : `${this.data}\n${value}`;
    else if (name === 'event') this.eventName = value;
    else if (name === 'id') this.lastEventId = value;
  }
}
