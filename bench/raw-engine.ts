/**
 * A bare Engine.IO WebSocket for the byte-counting benches (bench/compression.ts, bench/deltas.ts):
 * it offers permessage-deflate as a browser does, checks the handshake, and hands each text
 * message over, inflated when it came compressed. `WS_COMPRESSION=on` keeps no context between
 * messages (the answer says `server_no_context_takeover`, checked), so each compressed message is
 * inflated on its own; `WS_COMPRESSION=context` (`context: true`) keeps the server's window from
 * one message to the next (the answer must not say `server_no_context_takeover`), so each
 * compressed message is inflated with the window of those before it as its dictionary. What the
 * messages mean (Engine.IO pings, the namespace, the subscribe) is the caller's.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { constants, inflateRawSync } from 'node:zlib';
import { readFrameHeader } from '../loadtest/harness/wsclient.js';

/** The end of a deflated message, which permessage-deflate leaves off (RFC 7692 §7.2.1). */
const DEFLATE_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** One permessage-deflate message without context: the tail put back, inflated up to it. */
function inflate(payload: Buffer): Buffer {
  return inflateRawSync(Buffer.concat([payload, DEFLATE_TAIL]), { finishFlush: constants.Z_SYNC_FLUSH });
}

/**
 * One connection's inflater for context takeover: each compressed message is inflated with the
 * last `windowBits` worth of what earlier compressed messages inflated to as its dictionary (the
 * sliding window RFC 7692 §7.2.2 says to keep), so back-references into earlier messages resolve.
 * Synchronous, so messages stay in order on the client CPU; the history is bounded by the window.
 */
function contextInflater(windowBits: number): (payload: Buffer) => Buffer {
  const size = 1 << windowBits;
  let history = Buffer.alloc(0);
  return (payload) => {
    const out = inflateRawSync(Buffer.concat([payload, DEFLATE_TAIL]), { finishFlush: constants.Z_SYNC_FLUSH, windowBits: 15, ...(history.length ? { dictionary: history } : {}) });
    const joined = Buffer.concat([history, out]);
    history = joined.length > size ? Buffer.from(joined.subarray(joined.length - size)) : joined;
    return out;
  };
}

/** A masked client text frame. */
export function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  if (payload.length >= 126) throw new Error('bench client frames are short');
  const mask = randomBytes(4);
  const out = Buffer.allocUnsafe(6 + payload.length);
  out[0] = 0x81;
  out[1] = 0x80 | payload.length;
  mask.copy(out, 2);
  for (let i = 0; i < payload.length; i++) out[6 + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}

export interface RawEngineHandlers {
  /** The Sec-WebSocket-Extensions the server answered (empty when none). */
  opened(extensions: string): void;
  /** Each text message, inflated. A throw goes to `fail`. */
  text(t: string): void;
  /** A broken handshake, a fragmented message, a close from the server, a socket error, or a throw of `text`. */
  fail(err: Error): void;
}

/**
 * Connects to the Engine.IO WebSocket of `url` (as `http://host:port`). `context`: the server is
 * expected to keep its deflate window between messages (`WS_COMPRESSION=context`).
 */
export function openRawEngine(url: string, on: RawEngineHandlers, context = false): Socket {
  const u = new URL(url);
  const key = randomBytes(16).toString('base64');
  const socket = connect({ host: u.hostname, port: Number(u.port) });
  socket.setNoDelay(true);
  socket.on('error', on.fail);
  socket.write(
    `GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n`,
  );
  let buf: Buffer = Buffer.alloc(0);
  let open = false;
  let inflateNext = inflate;
  const onData = (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    if (!open) {
      const at = buf.indexOf('\r\n\r\n');
      if (at < 0) return;
      const head = buf.toString('latin1', 0, at);
      if (!/^HTTP\/1\.1 101 /.test(head) || !head.includes(createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64'))) {
        return on.fail(new Error(`handshake: ${head.split('\r\n')[0]}`));
      }
      const extensions = /\r\nsec-websocket-extensions:\s*([^\r]*)/i.exec(head)?.[1] ?? '';
      if (extensions && !context && !/server_no_context_takeover/.test(extensions)) return on.fail(new Error(`context takeover negotiated: ${extensions}`));
      if (extensions && context && /server_no_context_takeover/.test(extensions)) return on.fail(new Error(`context takeover expected: ${extensions}`));
      // The server's window: what it answered, else the most a client may be sent (2^15).
      if (context) inflateNext = contextInflater(Number(/server_max_window_bits=(\d+)/.exec(extensions)?.[1] ?? 15));
      on.opened(extensions);
      open = true;
      buf = buf.subarray(at + 4);
    }
    let off = 0;
    for (;;) {
      const frame = readFrameHeader(buf, off);
      if (!frame || buf.length - off < frame.head + frame.len) break;
      const { b0, len, head } = frame;
      const payload = buf.subarray(off + head, off + head + len);
      off += head + len;
      const op = b0 & 0x0f;
      if (!(b0 & 0x80)) return on.fail(new Error('fragmented message'));
      if (op === 1) on.text((b0 & 0x40 ? inflateNext(payload) : payload).toString());
      else if (op === 8) return on.fail(new Error('closed by the server'));
    }
    buf = off < buf.length ? Buffer.from(buf.subarray(off)) : Buffer.alloc(0);
  };
  socket.on('data', (chunk: Buffer) => {
    try {
      onData(chunk);
    } catch (err) {
      // Not thrown out of the socket's handler: the caller's stack must still be stopped (finally).
      on.fail(err as Error);
    }
  });
  return socket;
}
