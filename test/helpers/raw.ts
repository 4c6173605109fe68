import { connect as tcpConnect, type Socket as NetSocket } from 'node:net';
import WebSocket from 'ws';
import { WAIT_MS } from './wait.js';

/** A WebSocket speaking Engine.IO v4 by hand, for sending what a real client never would. */
export interface RawSocket {
  readonly ws: WebSocket;
  /** Text frames received, in order. */
  readonly frames: string[];
  /** Resolves with the close code once the connection is closed (1006 for an abrupt end). */
  readonly closed: Promise<number>;
  isOpen(): boolean;
  send(data: string | Buffer, binary?: boolean): void;
  /** Resolves with the first received frame (after `from`) that matches, or undefined on close/timeout. */
  next(match: (frame: string) => boolean, timeoutMs?: number): Promise<string | undefined>;
  close(): void;
}

/**
 * Opens `/socket.io/?EIO=4&transport=websocket`, waits for the open packet, answers pings, and,
 * with `connect`, sends `40` (with `auth`) and waits for the namespace answer.
 */
export async function rawSocket(
  baseUrl: string,
  opts: { connect?: boolean; auth?: object; headers?: Record<string, string> } = {},
): Promise<RawSocket> {
  const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`, { headers: opts.headers });
  const frames: string[] = [];
  const waiters = new Set<() => void>();
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? `<binary ${(data as Buffer).length}>` : data.toString();
    if (text === '2') ws.send('3');
    frames.push(text);
    for (const w of waiters) w();
  });
  const closed = new Promise<number>((resolve) => {
    ws.on('close', (code) => {
      resolve(code);
      for (const w of waiters) w();
    });
    ws.on('error', () => {});
  });
  const socket: RawSocket = {
    ws,
    frames,
    closed,
    isOpen: () => ws.readyState === WebSocket.OPEN,
    send(data, binary = false) {
      if (ws.readyState === WebSocket.OPEN) ws.send(data, { binary });
    },
    next(match, timeoutMs = WAIT_MS) {
      return new Promise((resolve) => {
        let seen = 0;
        const check = () => {
          for (; seen < frames.length; seen++) {
            if (match(frames[seen]!)) return finish(frames[seen]);
          }
          if (ws.readyState === WebSocket.CLOSED) finish(undefined);
        };
        const timer = setTimeout(() => finish(undefined), timeoutMs);
        const finish = (v: string | undefined) => {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(v);
        };
        waiters.add(check);
        check();
      });
    },
    close: () => ws.terminate(),
  };
  const open = await socket.next((f) => f.startsWith('0{'));
  if (!open) throw new Error(`no Engine.IO open packet; frames: ${frames.join(' | ')}`);
  if (opts.connect) {
    socket.send(`40${opts.auth ? JSON.stringify(opts.auth) : ''}`);
    const answer = await socket.next((f) => f.startsWith('40') || f.startsWith('44'));
    if (!answer?.startsWith('40{')) throw new Error(`namespace connect refused: ${answer}`);
  }
  return socket;
}

/**
 * Sends raw bytes over TCP and resolves with what came back until the server closed the
 * connection or `idleMs` passed without data; `stallMs` keeps the connection open (and silent)
 * after writing, as a slow client would.
 */
export function rawHttp(port: number, request: string | Buffer, opts: { idleMs?: number } = {}): Promise<string> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1', () => socket.write(request));
    let out = '';
    const done = () => {
      socket.destroy();
      resolve(out);
    };
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (out += d));
    socket.on('close', done);
    socket.on('error', done);
    socket.setTimeout(opts.idleMs ?? 5000, done);
  });
}

/**
 * A slowloris client: writes `head`, then `drip` every `everyMs` (default 1 s), until the server
 * closes the connection (FIN or reset) or `maxMs` passes. Resolves with what came back and whether
 * it was the server that closed.
 */
export function slowHttp(
  port: number,
  head: string,
  drip: string,
  opts: { everyMs?: number; maxMs: number },
): Promise<{ closed: boolean; received: string }> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1', () => socket.write(head));
    let received = '';
    const dripping = setInterval(() => socket.writable && socket.write(drip), opts.everyMs ?? 1000);
    const finish = (closed: boolean) => {
      clearInterval(dripping);
      clearTimeout(bound);
      socket.destroy();
      resolve({ closed, received });
    };
    const bound = setTimeout(() => finish(false), opts.maxMs);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (received += d));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
  });
}

export interface HandshakeAttempt {
  status: number | 'none';
  /** The status line and headers, without the blank line. */
  head: string;
  body: string;
  /** The server closed the connection after answering (or without answering). */
  closedByServer: Promise<boolean>;
  socket: NetSocket;
}

/** One raw HTTP request on its own connection: the answer's status, head and body, and whether the server then closes. */
export function attempt(port: number, head: string): Promise<HandshakeAttempt> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1', () => socket.write(head));
    let raw = '';
    let answered = false;
    let closed!: (v: boolean) => void;
    const closedByServer = new Promise<boolean>((r) => (closed = r));
    const answer = () => {
      if (answered) return;
      const end = raw.indexOf('\r\n\r\n');
      const status = end < 0 ? 'none' : Number(raw.slice(9, 12));
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(raw)?.[1] ?? 0);
      if (status !== 'none' && status !== 101 && raw.length < end + 4 + length) return;
      answered = true;
      resolve({ status, head: end < 0 ? '' : raw.slice(0, end), body: end < 0 ? '' : raw.slice(end + 4), closedByServer, socket });
    };
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      raw += d;
      answer();
    });
    socket.on('end', () => closed(true));
    socket.on('close', () => {
      closed(true);
      answer();
      if (!answered) {
        answered = true;
        resolve({ status: 'none', head: '', body: '', closedByServer, socket });
      }
    });
    socket.on('error', () => {});
  });
}

/** A WebSocket upgrade request for Engine.IO, as a browser sends it. */
export const upgradeHead = (path = '/socket.io/?EIO=4&transport=websocket') =>
  `GET ${path} HTTP/1.1\r\nHost: herald\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
