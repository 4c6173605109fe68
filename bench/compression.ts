/**
 * `WS_COMPRESSION` off against on: bytes on the wire per delivery and server CPU per delivery for
 * a live-score update (about 400 bytes of JSON, a 540-byte Socket.IO frame) fanned out to 1,000
 * subscribers of one room on one replica, on each transport. `npm run bench` runs it with the
 * defaults below; alone:
 *
 *   node --import tsx bench/compression.ts        # knobs: SUBSCRIBERS, RATE, SECONDS, TRANSPORTS=uws,node, MODES=off,on,context
 *
 * Clients offer permessage-deflate as browsers do and inflate each message synchronously (the
 * harness's client cannot inflate; the `ws` package inflates on the thread pool and, 1,000 of
 * them on the one client core, fell seconds behind, which left uWS writing to sockets with
 * backpressure, one system call per message), in this process on the client CPU. Bytes on the wire are what the clients' TCP
 * sockets read while the messages arrived (WebSocket frame headers included, TCP/IP headers not),
 * over the deliveries. Server CPU is the replica's user + system time over the same window; it
 * includes the HTTP publishes (RATE a second), which are the same with compression off and on.
 * RSS per connection is the replica's growth from before the clients connected to after the run,
 * over the subscribers: ws keeps a zlib stream per connection that compressed something.
 */
import type { Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { clientFrame, openRawEngine } from './raw-engine.js';
import { cpuSeconds, cpuUsEach, heraldStack, pinToClientCpu, rssBytes } from './stacks.js';

export interface CompressionRow {
  transport: 'uws' | 'node';
  compression: 'off' | 'on' | 'context';
  subscribers: number;
  /** Clients whose handshake negotiated permessage-deflate. */
  negotiated: number;
  published: number;
  deliveries: number;
  /** Length of one delivered Socket.IO frame before compression. */
  frameBytes: number;
  wireBytesPerDelivery: number;
  serverCpuUsPerDelivery: number;
  rssBytesPerConnection: number;
  /** From the last publish to the last delivery: well under a second when the replica keeps up. */
  drainSeconds: number;
}

export interface CompressionOptions {
  subscribers: number;
  /** Messages per second published to the room. */
  rate: number;
  seconds: number;
  transports: ('uws' | 'node')[];
}

export const COMPRESSION_DEFAULTS: CompressionOptions = { subscribers: 1000, rate: 20, seconds: 10, transports: ['uws', 'node'] };

const ROOM = 'scores:epl-2026-27-md14-ars-che';

/** The n-th update of a match: a few hundred bytes of JSON, as a score page receives them. */
export function scoreUpdate(n: number) {
  return {
    match: 'epl-2026-27-md14-ars-che',
    status: 'live',
    minute: 1 + (n % 90),
    period: n % 90 < 45 ? '1H' : '2H',
    home: { id: 'ars', name: 'Arsenal', score: 2 },
    away: { id: 'che', name: 'Chelsea', score: 1 },
    lastEvent: { type: 'goal', team: 'ars', player: 'B. Saka', minute: 66, assist: 'M. Odegaard' },
    stats: { possession: [56, 44], shots: [14 + (n % 3), 8], shotsOnTarget: [6, 3], corners: [7, 2], fouls: [9, 12], yellowCards: [1, 2], redCards: [0, 0] },
    updatedAt: new Date(1_795_239_768_439 + n * 1000).toISOString(),
  };
}

interface Subscriber {
  socket: Socket;
  /** The Sec-WebSocket-Extensions the server answered. */
  extensions: string;
  deliveries: number;
  frameBytes: number;
}

/**
 * Opens an Engine.IO WebSocket offering permessage-deflate (as a browser does), connects the
 * namespace and subscribes to ROOM; resolves on the ack. `WS_COMPRESSION=on` keeps no context
 * between messages (checked), so each compressed message is inflated on its own; `context`: one
 * inflate stream per connection (bench/raw-engine.ts).
 */
function subscriber(url: string, context = false): Promise<Subscriber> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      clearTimeout(timer);
      s.socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error('subscribe timed out')), 30_000);
    const text = (t: string) => {
      if (t.startsWith('42["score"')) {
        s.deliveries++;
        s.frameBytes = Buffer.byteLength(t);
      } else if (t === '2') s.socket.write(clientFrame('3'));
      else if (t.startsWith('0{')) s.socket.write(clientFrame('40'));
      else if (t.startsWith('40{')) s.socket.write(clientFrame(`420${JSON.stringify(['subscribe', ROOM])}`));
      else if (t.startsWith('430')) {
        clearTimeout(timer);
        if (JSON.parse(t.slice(3))[0]?.ok !== true) fail(new Error(`subscribe refused: ${t}`));
        else resolve(s);
      }
    };
    const s: Subscriber = { socket: undefined as unknown as Socket, extensions: '', deliveries: 0, frameBytes: 0 };
    s.socket = openRawEngine(url, { opened: (e) => (s.extensions = e), text, fail }, context);
  });
}

const bytesRead = (subs: Subscriber[]) => subs.reduce((a, s) => a + s.socket.bytesRead, 0);

async function measure(transport: 'uws' | 'node', compression: 'off' | 'on' | 'context', opts: CompressionOptions): Promise<CompressionRow> {
  const stack = await heraldStack(`compression-${transport}-${compression}`, transport, 1, { REDIS_URL: '', WS_COMPRESSION: compression });
  const pid = stack.servers[0]!.pid;
  const url = stack.urls[0]!;
  const subs: Subscriber[] = [];
  try {
    const rssBefore = rssBytes(pid);
    for (let i = 0; i < opts.subscribers; i += 100) {
      subs.push(...(await Promise.all(Array.from({ length: Math.min(100, opts.subscribers - i) }, () => subscriber(url, compression === 'context')))));
    }
    const negotiated = subs.filter((s) => /permessage-deflate/.test(s.extensions)).length;
    const total = Math.round(opts.rate * opts.seconds);
    const wireBefore = bytesRead(subs);
    const cpuBefore = cpuSeconds(pid);
    const started = performance.now();
    let published = 0;
    for (let n = 0; n < total; n++) {
      const due = started + (n * 1000) / opts.rate;
      if (due > performance.now()) await delay(due - performance.now());
      const res = await fetch(`${url}/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room: ROOM, event: 'score', data: scoreUpdate(n) }) });
      if (res.status === 200) published++;
      await res.arrayBuffer();
    }
    const deliveries = () => subs.reduce((a, s) => a + s.deliveries, 0);
    const lastPublish = performance.now();
    const deadline = lastPublish + 60_000;
    while (deliveries() < published * subs.length && performance.now() < deadline) await delay(20);
    const drainSeconds = (performance.now() - lastPublish) / 1000;
    const cpu = cpuSeconds(pid) - cpuBefore;
    const delivered = deliveries();
    return {
      transport,
      compression,
      subscribers: subs.length,
      negotiated,
      published,
      deliveries: delivered,
      frameBytes: subs[0]!.frameBytes,
      wireBytesPerDelivery: (bytesRead(subs) - wireBefore) / Math.max(1, delivered),
      serverCpuUsPerDelivery: cpuUsEach(cpu, delivered),
      rssBytesPerConnection: (rssBytes(pid) - rssBefore) / subs.length,
      drainSeconds,
    };
  } finally {
    for (const s of subs) s.socket.destroy();
    await stack.stop();
  }
}

/** Every transport with compression off, then on. */
export async function compressionComparison(opts: CompressionOptions = COMPRESSION_DEFAULTS): Promise<CompressionRow[]> {
  const rows: CompressionRow[] = [];
  for (const transport of opts.transports) for (const compression of ['off', 'on'] as const) rows.push(await measure(transport, compression, opts));
  return rows;
}

export function formatRow(r: CompressionRow): string {
  return `${r.transport.padEnd(4)} compression ${r.compression.padEnd(7)}: ${r.negotiated}/${r.subscribers} negotiated, ${r.deliveries} of ${r.published * r.subscribers} delivered, ${r.frameBytes}-byte frame -> ${r.wireBytesPerDelivery.toFixed(1)} bytes on the wire per delivery, server CPU ${r.serverCpuUsPerDelivery.toFixed(2)} µs per delivery, RSS +${(r.rssBytesPerConnection / 1024).toFixed(1)} KiB per connection, last delivery ${r.drainSeconds.toFixed(1)} s after the last publish`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  pinToClientCpu();
  const env = process.env;
  const opts: CompressionOptions = {
    subscribers: Number(env.SUBSCRIBERS ?? COMPRESSION_DEFAULTS.subscribers),
    rate: Number(env.RATE ?? COMPRESSION_DEFAULTS.rate),
    seconds: Number(env.SECONDS ?? COMPRESSION_DEFAULTS.seconds),
    transports: (env.TRANSPORTS ?? COMPRESSION_DEFAULTS.transports.join(',')).split(',') as ('uws' | 'node')[],
  };
  const modes = (env.MODES ?? 'off,on,context').split(',') as ('off' | 'on' | 'context')[];
  for (const transport of opts.transports) for (const compression of modes) console.log(formatRow(await measure(transport, compression, opts)));
}
