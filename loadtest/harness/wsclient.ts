/**
 * A minimal RFC 6455 WebSocket client for the load harness: TCP (or TLS) socket, the opening
 * handshake, masked text frames out, frames in parsed in place. It exists because the `ws`
 * package, a fine general client, costs more CPU per received frame than the gateways it measures:
 * with one client core against one server core, the client saturated first. Here a received text
 * frame is handed over as a slice of the bytes just read (no copy, no event emitter), and only
 * frames that are split across reads or fragmented are copied.
 *
 * Plain TCP sockets read into one buffer shared by every connection of the process (`onread`):
 * the bytes are consumed inside the callback, so nothing needs a Buffer of its own per read, and
 * Node emits no `data` event. Before this (a Buffer and a stream event per read) one client core
 * took fewer deliveries per CPU-second; BENCHMARKS.md has the before/after. TLS sockets (wss:)
 * cannot read that way and use `data` events.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const HEADER_END = Buffer.from('\r\n\r\n');
/** A larger incoming frame than this is a protocol error (Socket.IO frames here are small). */
const MAX_FRAME = 16 * 1024 * 1024;

/**
 * The buffer every plain connection of this process reads into. 64 KiB holds the bursts uWS
 * writes in one `sendto` (a few hundred small frames); a larger read arrives in several calls.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** Frame opcodes (RFC 6455 §5.2). */
const Op = { Continuation: 0, Text: 1, Binary: 2, Close: 8, Ping: 9, Pong: 10 } as const;

/** A server frame's first byte (FIN, RSV1, opcode), payload length and header length. */
export interface FrameHeader {
  readonly b0: number;
  /** The mask bit: servers must not set it. */
  readonly masked: boolean;
  readonly len: number;
  readonly head: number;
}

/** Reads the header of the frame at `off`; undefined until the whole header is in `buf`. */
export function readFrameHeader(buf: Buffer, off: number): FrameHeader | undefined {
  if (buf.length - off < 2) return undefined;
  const b0 = buf[off]!;
  const b1 = buf[off + 1]!;
  let len = b1 & 0x7f;
  let head = 2;
  if (len === 126) {
    if (buf.length - off < 4) return undefined;
    len = buf.readUInt16BE(off + 2);
    head = 4;
  } else if (len === 127) {
    if (buf.length - off < 10) return undefined;
    len = buf.readUInt32BE(off + 2) * 2 ** 32 + buf.readUInt32BE(off + 6);
    head = 10;
  }
  return { b0, masked: (b1 & 0x80) !== 0, len, head };
}

export interface WsHandlers {
  /** Called once the handshake has completed. */
  open(): void;
  /** A complete text message: `buf[start, end)`. The slice is only valid during the call. */
  text(buf: Buffer, start: number, end: number): void;
  /** Called once, whatever ended the connection (close frame, reset, failed handshake). */
  closed(reason: string): void;
}

export interface WsOptions {
  localAddress?: string;
  /** Extra request headers for the handshake (e.g. Origin). */
  headers?: Record<string, string>;
}

/** One client connection. `send` before `open` is a programming error and throws. */
export class WsClient {
  private readonly socket: Socket;
  private readonly key = randomBytes(16).toString('base64');
  private state: 'handshake' | 'open' | 'closed' = 'handshake';
  /** Bytes of an incomplete frame (or handshake) carried over to the next chunk. */
  private pending: Buffer | undefined;
  /** Payload pieces of a fragmented message, until its final frame. */
  private fragments: Buffer[] | undefined;
  private fragmentOp: number = Op.Text;

  constructor(url: string, private readonly on: WsHandlers, opts: WsOptions = {}) {
    const u = new URL(url);
    const secure = u.protocol === 'wss:';
    const port = Number(u.port || (secure ? 443 : 80));
    const tcp = secure
      ? tcpConnect({ host: u.hostname, port, localAddress: opts.localAddress })
      : tcpConnect({
          host: u.hostname,
          port,
          localAddress: opts.localAddress,
          onread: {
            buffer: READ_BUFFER,
            callback: (n: number, buf: Uint8Array) => {
              this.data((buf as Buffer).subarray(0, n));
              return true; // keep reading: the bytes were consumed (or copied) already
            },
          },
        });
    this.socket = secure ? tlsConnect({ socket: tcp, servername: u.hostname }) : tcp;
    this.socket.setNoDelay(true);
    const headers = {
      Host: u.host,
      Upgrade: 'websocket',
      Connection: 'Upgrade',
      'Sec-WebSocket-Key': this.key,
      'Sec-WebSocket-Version': '13',
      ...opts.headers,
    };
    const request = `GET ${u.pathname}${u.search} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
    this.socket.once(secure ? 'secureConnect' : 'connect', () => this.socket.write(request));
    if (secure) this.socket.on('data', (chunk: Buffer) => this.data(chunk));
    this.socket.on('error', (err) => this.end(`error: ${err.message}`));
    this.socket.on('close', () => this.end('socket closed'));
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Sends a text message (masked, as RFC 6455 requires of clients). */
  send(text: string): void {
    if (this.state !== 'open') throw new Error(`WebSocket is ${this.state}`);
    this.socket.write(frame(Op.Text, Buffer.from(text)));
  }

  /** Drops the connection at once, without a closing handshake (as a crash or a network cut). */
  terminate(): void {
    this.socket.destroy();
    this.end('terminated');
  }

  private end(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.socket.destroy();
    this.on.closed(reason);
  }

  private data(chunk: Buffer): void {
    // `chunk` may be the shared read buffer: whatever outlives this call is copied (`pending`).
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    if (this.state === 'handshake') {
      const at = buf.indexOf(HEADER_END);
      if (at < 0) {
        if (buf.length > 16 * 1024) return this.end('handshake: response headers too long');
        this.pending = Buffer.from(buf);
        return;
      }
      const head = buf.toString('latin1', 0, at);
      if (!/^HTTP\/1\.1 101 /.test(head)) return this.end(`handshake: ${head.split('\r\n')[0]}`);
      const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head)?.[1];
      if (accept !== createHash('sha1').update(this.key + GUID).digest('base64')) return this.end('handshake: bad Sec-WebSocket-Accept');
      this.state = 'open';
      this.on.open();
      buf = buf.subarray(at + HEADER_END.length);
    }
    let off = 0;
    while (this.state === 'open') {
      const frame = readFrameHeader(buf, off);
      if (!frame) break;
      const { b0, len, head } = frame;
      if (frame.masked) return this.end('protocol: masked frame from server');
      if (len > MAX_FRAME) return this.end(`protocol: frame of ${len} bytes`);
      if (buf.length - off < head + len) break;
      this.frame(b0 & 0x80 ? true : false, b0 & 0x0f, buf, off + head, off + head + len);
      off += head + len;
    }
    if (off < buf.length && this.state === 'open') this.pending = Buffer.from(buf.subarray(off));
  }

  private frame(fin: boolean, op: number, buf: Buffer, start: number, end: number): void {
    if (op === Op.Text || op === Op.Binary) {
      if (this.fragments) return this.end('protocol: new message inside a fragmented one');
      if (fin) {
        if (op === Op.Text) this.on.text(buf, start, end);
        return;
      }
      this.fragmentOp = op;
      this.fragments = [Buffer.from(buf.subarray(start, end))];
    } else if (op === Op.Continuation) {
      if (!this.fragments) return this.end('protocol: continuation without a message');
      this.fragments.push(Buffer.from(buf.subarray(start, end)));
      if (!fin) return;
      const whole = Buffer.concat(this.fragments);
      this.fragments = undefined;
      if (this.fragmentOp === Op.Text) this.on.text(whole, 0, whole.length);
    } else if (op === Op.Ping) {
      this.socket.write(frame(Op.Pong, buf.subarray(start, end)));
    } else if (op === Op.Close) {
      this.socket.end(frame(Op.Close, buf.subarray(start, Math.min(end, start + 2))));
      this.end(`close ${end - start >= 2 ? buf.readUInt16BE(start) : 1005}`);
    } else if (op !== Op.Pong) {
      this.end(`protocol: opcode ${op}`);
    }
  }
}

/** A client frame: FIN set, masked with a fresh key. */
function frame(op: number, payload: Buffer): Buffer {
  const len = payload.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + 4 + len);
  out[0] = 0x80 | op;
  if (head === 2) out[1] = 0x80 | len;
  else if (head === 4) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    out.writeUInt32BE(len >>> 0, 6);
  }
  const mask = randomBytes(4);
  mask.copy(out, head);
  for (let i = 0; i < len; i++) out[head + 4 + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}
