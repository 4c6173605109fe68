import type { TemplatedApp } from 'uWebSockets.js';

/**
 * Past this many bytes waiting for one connection, its writes go out at once instead of at the
 * end of the turn: what the outbox holds for a connection is bounded by this plus one message.
 */
export const OUTBOX_FLUSH_BYTES = 64 * 1024;

/** uWS's WebSocket, as Engine.IO's uWS transport holds it. */
interface UwsSocket {
  send(data: string | Buffer | ArrayBuffer, isBinary: boolean, compress: boolean): number;
  cork(cb: () => void): void;
  end(code?: number): void;
}

/** Engine.IO's uWS WebSocket transport (engine.io/build/transports-uws/websocket.js), the parts used here. */
interface UwsTransport {
  socket: UwsSocket;
  readyState: string;
  writable: boolean;
  supportsBinary: boolean;
  perMessageDeflate?: { threshold: number } | false;
  parser: { encodePacket(packet: unknown, supportsBinary: boolean, cb: (data: string | Buffer) => void): void };
  emit(event: string, ...args: unknown[]): boolean;
  send(packets: { options?: { wsPreEncoded?: string } }[]): void;
  doClose(fn?: () => void): void;
}

type Frame = [data: string | Buffer, binary: boolean, compress: boolean];

/**
 * One write system call per WebSocket connection per event-loop turn, for what herald writes to
 * one connection (acks, replays, recovery, a socket's own messages).
 *
 * uWS sends a message at once unless the send is made inside a uWS callback (a message, an
 * upgrade), where it corks the socket and writes everything at the callback's end. What herald
 * writes after waiting on Redis (the CONNECT's answer after the token check and session lookup, a
 * subscribe's catch-up and its ack after XRANGE) is outside any: every message was its own
 * `send` system call, on loopback with the receiving end's TCP work charged to it (20 % of a
 * surviving replica's CPU in a reconnect storm, bench/scale/reconnect.ts). Here a connection's
 * writes wait in order until the end of the turn (`setImmediate`, after every I/O callback of the
 * turn) and go out corked, in one write.
 *
 * What each connection receives, and in which order, is unchanged:
 * - a room publish (uWS `app.publish`) reaches its subscribers at once, so everything waiting is
 *   written before any publish (`wrapPublish`);
 * - a connection that is being closed (`doClose`) gets what waits for it first;
 * - a connection whose waiting bytes pass `OUTBOX_FLUSH_BYTES` is written to at once, so the
 *   outbox holds little per connection; `outboundBytes` (src/realtime/slow-consumers.ts) counts
 *   what waits here, and before a connection is closed, paced or held back for its queue
 *   (`outboundBytesAgainst`) what waits is written out first (`writeOutNow`): those decisions
 *   count what the kernel has not taken, as before, not what waits for the turn's end.
 * Long-polling is untouched (Engine.IO's polling transport buffers by itself).
 */
export class Outbox {
  private waiting = new Map<UwsTransport, { frames: Frame[]; bytes: number }>();
  private scheduled = false;

  /** Bytes waiting for this Engine.IO transport's connection. */
  pendingBytes(transport: object): number {
    return this.waiting.get(transport as UwsTransport)?.bytes ?? 0;
  }

  write(transport: UwsTransport, frame: Frame): void {
    let entry = this.waiting.get(transport);
    if (!entry) this.waiting.set(transport, (entry = { frames: [], bytes: 0 }));
    entry.frames.push(frame);
    entry.bytes += typeof frame[0] === 'string' ? frame[0].length : frame[0].byteLength;
    if (entry.bytes > OUTBOX_FLUSH_BYTES) {
      this.flushOne(transport);
      return;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Writes everything waiting, each connection's in one corked write. */
  readonly flush = (): void => {
    this.scheduled = false;
    if (this.waiting.size === 0) return;
    const waiting = this.waiting;
    this.waiting = new Map();
    for (const [transport, { frames }] of waiting) writeOut(transport, frames);
  };

  /** Writes out what waits for one connection now; false when nothing did. */
  flushOne(transport: UwsTransport): boolean {
    const entry = this.waiting.get(transport);
    if (!entry) return false;
    this.waiting.delete(transport);
    writeOut(transport, entry.frames);
    return true;
  }

  /** Everything waiting goes out before any of this app's publishes. */
  wrapPublish(app: TemplatedApp): void {
    const publish = app.publish.bind(app);
    (app as { publish: TemplatedApp['publish'] }).publish = (...args: Parameters<TemplatedApp['publish']>) => {
      this.flush();
      return publish(...args);
    };
  }

  /**
   * Routes the sends of Engine.IO's uWS WebSocket transport through this outbox; patched on the
   * prototype Socket.IO's engine uses, found on the first WebSocket connection.
   */
  patch(proto: UwsTransport): void {
    if (patched.has(proto)) return;
    patched.add(proto);
    const doClose = proto.doClose;
    const box = this;
    // engine.io's own `send`, with `this.socket.send` handed to the outbox (same encoding, same
    // compression rule, same `drain` and `ready` events once the packets are taken).
    proto.send = function send(this: UwsTransport, packets) {
      this.writable = false;
      for (let i = 0; i < packets.length; i++) {
        const packet = packets[i]!;
        const isLast = i + 1 === packets.length;
        const take = (data: string | Buffer) => {
          const binary = typeof data !== 'string';
          const compress = !!this.perMessageDeflate && Buffer.byteLength(data) > this.perMessageDeflate.threshold;
          box.write(this, [data, binary, compress]);
          if (isLast) {
            this.emit('drain');
            this.writable = true;
            this.emit('ready');
          }
        };
        if (typeof packet.options?.wsPreEncoded === 'string') take(packet.options.wsPreEncoded);
        else this.parser.encodePacket(packet, this.supportsBinary, take);
      }
    };
    proto.doClose = function (this: UwsTransport, fn) {
      box.flushOne(this);
      return doClose.call(this, fn);
    };
  }
}

const patched = new WeakSet<object>();
/**
 * The process's outbox: one for every uWS app in it (tests and embedders may run several), so
 * that any app's publish writes out whatever waits for any connection first.
 */
const outbox = new Outbox();

/** Makes `app`'s publishes write out what waits first; the process's outbox. */
export function installOutbox(app: TemplatedApp): Outbox {
  outbox.wrapPublish(app);
  return outbox;
}

/** What waits in the process's outbox for an Engine.IO transport's connection. */
export function outboxBytes(transport: object): number {
  return outbox.pendingBytes(transport);
}

/** Writes out now what waits for an Engine.IO transport's connection; false when nothing did. */
export function writeOutNow(transport: object): boolean {
  return outbox.flushOne(transport as UwsTransport);
}

function writeOut(transport: UwsTransport, frames: Frame[]): void {
  // Closed (by its client, or by uWS over maxBackpressure): nothing can be written to it any more.
  if (transport.readyState === 'closed') return;
  const ws = transport.socket;
  try {
    ws.cork(() => {
      for (const [data, binary, compress] of frames) ws.send(data, binary, compress);
    });
  } catch {
    // uWS closed it during one of these sends (over maxBackpressure): the rest cannot be written.
  }
}
