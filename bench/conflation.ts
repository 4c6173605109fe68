/**
 * Conflation (CONFLATE_ROOMS) for a phone in a tunnel: a client that stops reading for SECONDS
 * (30) while scores publish at RATE (10) a second into each of ROOMS match rooms, then reads
 * again; HEALTHY clients of the same rooms read all along. One replica, default
 * SLOW_CLIENT_MAX_BYTES (1 MiB: conflation from 512 KiB queued). Alone:
 *
 *   npm run build && node --import tsx bench/conflation.ts   # knobs: ROOMS, RATE, SECONDS, HEALTHY, TRANSPORTS=uws,node
 *
 * The slow client is a socket.io-client behind a TCP relay that stops reading what the replica
 * sends (test/helpers/relay.ts) right after it subscribed: the kernel's buffers fill first (the
 * relay's receive buffer, about 130 KB, and the replica's send buffer: small under uWS, grown to
 * about 4 MB, tcp_wmem's maximum here, under the node transport), then the replica's queue. With
 * one room of 400-byte scores at 10/s, 30 s is 120 KB, which the kernel takes whole: nothing is
 * conflated and the client reads all 300 when it comes back. So the default is a league page,
 * 50 rooms (8 MB in 30 s).
 *
 * A loopback artifact shows on the node transport: after 30 s of a zero window the replica's
 * socket is in TCP's persist timer (`ss -tnio`: `timer:(persist,…) backoff:5`), and the window the
 * relay then opens (40 KB) is smaller than loopback's 64 KB MSS, so the kernel sends nothing until
 * the next probe, seconds later; past socket.io-client's ping deadline (PING_INTERVAL_MS +
 * PING_TIMEOUT_MS from the last ping it read) the client gives up. With a real network's MSS
 * (1,460 bytes) the open window is used at once.
 *
 * Reported: scores conflated (replaced while held, `herald_conflated_messages_total`), the most
 * held at once (`herald_conflation_held_messages`, sampled every 250 ms; at most ROOMS), whether
 * the slow client was closed, what it received of what was published, the time from the relay
 * reading again to the slow client having the newest score of every room, and the healthy
 * clients' fan-out latency (publish time `meta.ts` to receipt) p50/p99 in a first phase with no
 * slow reader and in the phase with it.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { io as connect, type Socket } from 'socket.io-client';
import { startRelay } from '../test/helpers/relay.js';
import { scoreUpdate } from './compression.js';
import { heraldStack, pinToClientCpu } from './stacks.js';

export interface ConflationOptions {
  rooms: number;
  /** Scores a second per room. */
  rate: number;
  /** How long the slow client does not read; the phase without it lasts a third of this. */
  seconds: number;
  healthy: number;
  transports: ('uws' | 'node')[];
}

/** herald's default, which bench/stacks.ts raises for the other benchmarks. */
const SLOW_CLIENT_MAX_BYTES = 1024 * 1024;

export const CONFLATION_DEFAULTS: ConflationOptions = { rooms: 50, rate: 10, seconds: 30, healthy: 20, transports: ['uws', 'node'] };

export interface ConflationRow {
  transport: 'uws' | 'node';
  rooms: number;
  /** Scores a second per room. */
  rate: number;
  published: number;
  conflated: number;
  maxHeld: number;
  /** Why the slow client was closed (socket.io-client's reason, or `slow consumer` from the replica); undefined: it was not. */
  slowClosed: string | undefined;
  slowReceived: number;
  /** From the relay reading again to the slow client having the newest score of every room. */
  newestAfterMs: number | undefined;
  healthyDelivered: number;
  healthyExpected: number;
  /** Healthy clients' fan-out latency, ms: [p50, p99] without and with the slow reader. */
  baseline: [number, number];
  withSlow: [number, number];
}

interface Reader {
  socket: Socket;
  /** Per room, the newest score number received. */
  newest: Map<string, number>;
  received: number;
  latencies: number[];
}

function reader(url: string, rooms: string[]): Promise<Reader> {
  const socket = connect(url, { transports: ['websocket'], reconnection: false, forceNew: true });
  const r: Reader = { socket, newest: new Map(), received: 0, latencies: [] };
  socket.on('score', (data: { n: number }, meta: { room: string; ts: number }) => {
    r.received++;
    r.latencies.push(Date.now() - meta.ts);
    r.newest.set(meta.room, Math.max(r.newest.get(meta.room) ?? 0, data.n));
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('connect timed out')), 15_000);
    socket.once('connect_error', reject);
    socket.once('connect', async () => {
      for (const room of rooms) {
        const ack = await socket.timeout(10_000).emitWithAck('subscribe', room);
        if (ack?.ok !== true) return reject(new Error(`subscribe refused: ${JSON.stringify(ack)}`));
      }
      clearTimeout(timer);
      resolve(r);
    });
  });
}

function percentiles(values: number[]): [number, number] {
  if (values.length === 0) return [NaN, NaN];
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return [at(0.5), at(0.99)];
}

async function readyz(url: string): Promise<{ conflatedMessages: number; conflationHeld: number; slowConsumerDisconnects: number }> {
  return (await (await fetch(`${url}/readyz`)).json()) as never;
}

async function measure(transport: 'uws' | 'node', opts: ConflationOptions): Promise<ConflationRow> {
  const stack = await heraldStack(`conflation-${transport}`, transport, 1, { REDIS_URL: '', CONFLATE_ROOMS: 'scores:*', SLOW_CLIENT_MAX_BYTES: String(SLOW_CLIENT_MAX_BYTES), MAX_SUBSCRIPTIONS: String(Math.max(100, opts.rooms + 10)), CLIENT_BURST: String(Math.max(100, opts.rooms * 2)) });
  const url = stack.urls[0]!;
  const port = Number(new URL(url).port);
  const relay = await startRelay(port);
  const rooms = Array.from({ length: opts.rooms }, (_, i) => `scores:match-${i}`);
  const readers: Reader[] = [];
  try {
    for (let i = 0; i < opts.healthy; i++) readers.push(await reader(url, rooms));

    let n = 0;
    let published = 0;
    /** Publishes one score into every room each 1/rate s for `seconds`. */
    const publishFor = async (seconds: number) => {
      const started = performance.now();
      const ticks = Math.round(seconds * opts.rate);
      for (let t = 0; t < ticks; t++) {
        const due = started + (t * 1000) / opts.rate;
        if (due > performance.now()) await delay(due - performance.now());
        n++;
        const res = await fetch(`${url}/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ rooms, event: 'score', data: { ...scoreUpdate(n), n } }) });
        if (res.status !== 200) throw new Error(`publish: ${res.status} ${await res.text()}`);
        await res.arrayBuffer();
        published += rooms.length;
      }
    };

    await publishFor(opts.seconds / 3);
    const baseline = percentiles(readers.flatMap((r) => r.latencies.splice(0)));

    // Connected and subscribed now, and not reading from here on: its connection's TCP windows
    // are still their initial size (they grow with what a connection reads).
    const slow = await reader(relay.url, rooms);
    let slowClosed = false;
    let closedBy = '';
    slow.socket.on('disconnect', (reason) => {
      slowClosed = true;
      closedBy = reason;
    });
    relay.hold();
    let maxHeld = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxHeld = Math.max(maxHeld, (await readyz(url)).conflationHeld);
        await delay(250);
      }
    })();
    await publishFor(opts.seconds);
    sampling = false;
    await sampler;
    const withSlow = percentiles(readers.flatMap((r) => r.latencies.splice(0)));
    const before = await readyz(url);

    const released = performance.now();
    relay.release();
    let newestAfterMs: number | undefined;
    for (const deadline = released + 30_000; performance.now() < deadline && !slowClosed; ) {
      if (rooms.every((room) => slow.newest.get(room) === n)) {
        newestAfterMs = performance.now() - released;
        break;
      }
      await delay(5);
    }
    const healthyExpected = published * opts.healthy;
    for (const deadline = performance.now() + 10_000; performance.now() < deadline && readers.reduce((a, r) => a + r.received, 0) < healthyExpected; ) await delay(20);
    const after = await readyz(url);
    return {
      transport,
      rooms: opts.rooms,
      rate: opts.rate,
      published,
      conflated: after.conflatedMessages,
      maxHeld,
      slowClosed: slowClosed ? closedBy : before.slowConsumerDisconnects > 0 ? 'slow consumer' : undefined,
      slowReceived: slow.received,
      newestAfterMs,
      healthyDelivered: readers.reduce((a, r) => a + r.received, 0),
      healthyExpected,
      baseline,
      withSlow,
    };
  } finally {
    for (const r of readers) r.socket.close();
    await relay.close();
    await stack.stop();
  }
}

export async function conflationBench(opts: ConflationOptions = CONFLATION_DEFAULTS): Promise<ConflationRow[]> {
  const rows: ConflationRow[] = [];
  for (const transport of opts.transports) rows.push(await measure(transport, opts));
  return rows;
}

export function formatConflationRow(r: ConflationRow): string {
  const ms = (v: number | undefined) => (v === undefined ? 'never' : `${v.toFixed(0)} ms`);
  return (
    `${r.transport.padEnd(4)}: ${r.published} scores into ${r.rooms} rooms; slow client ${r.slowClosed ? `CLOSED (${r.slowClosed})` : 'stayed connected'}, ` +
    `received ${r.slowReceived}, ${r.conflated} conflated, at most ${r.maxHeld} held at once, newest of every room ${ms(r.newestAfterMs)} after it read again; ` +
    `healthy ${r.healthyDelivered} of ${r.healthyExpected} delivered, p50/p99 ${r.baseline.join('/')} ms without the slow reader, ${r.withSlow.join('/')} ms with it`
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  pinToClientCpu();
  const env = process.env;
  const opts: ConflationOptions = {
    rooms: Number(env.ROOMS ?? CONFLATION_DEFAULTS.rooms),
    rate: Number(env.RATE ?? CONFLATION_DEFAULTS.rate),
    seconds: Number(env.SECONDS ?? CONFLATION_DEFAULTS.seconds),
    healthy: Number(env.HEALTHY ?? CONFLATION_DEFAULTS.healthy),
    transports: (env.TRANSPORTS ?? CONFLATION_DEFAULTS.transports.join(',')).split(',') as ('uws' | 'node')[],
  };
  for (const row of await conflationBench(opts)) console.log(formatConflationRow(row));
}
