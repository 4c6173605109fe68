/**
 * Delta rooms (HISTORY_ROOMS ` delta`, `subscribe {room, delta: "fossil"}`) against whole messages,
 * with `WS_COMPRESSION` off, on and context, side by side in one run: a live-score object (about 400 bytes
 * of JSON, `scoreUpdate` of bench/compression.ts: the minute, the shots and `updatedAt` change per
 * update, the period at half time) published RATE (20) times a second for SECONDS (10) to one
 * room of SUBSCRIBERS (1,000), on the uWS transport, in two setups:
 * - one replica, no Redis;
 * - two replicas + Redis: subscribers split over both (every other one), publishes over HTTP to
 *   each replica in turn.
 * Six variants per setup, each on fresh processes: whole messages, `WS_COMPRESSION=on`
 * (`compression`), delta, delta + `WS_COMPRESSION=on`, `WS_COMPRESSION=context` (`context`: a
 * deflate window per connection kept between messages; the subscribers inflate through one stream
 * each) and delta + context. Every variant uses the same room (`scores:*` with ` delta`), so the
 * whole messages carry the same meta (`room`, `id`, `ts`) and recovery offset as the deltas.
 * ROUNDS (3) repeats them, interleaved, against the shared machine's noise. Alone:
 *
 *   npm run build && node --import tsx bench/deltas.ts [--record]   # knobs: SUBSCRIBERS, RATE, SECONDS, ROUNDS, SETUPS=1,2, VARIANTS=whole,…, TRANSPORT=uws|node
 *
 * `--record` writes the run into bench/results.json (`deltasSeparate`), which
 * `node --import tsx bench/run.ts --report` shows in BENCHMARKS.md.
 *
 * Measured:
 * - bytes on the wire per delivery: what the subscribers' TCP sockets read while the measured
 *   messages arrived (WebSocket frame headers included, TCP/IP headers not), over the deliveries.
 *   The subscribers are raw WebSocket clients in this process (offering permessage-deflate as
 *   browsers do, inflating synchronously: see bench/compression.ts), pinned to the client CPU.
 *   Two warm-up publishes go first (a delta subscriber's first live message is whole; the second
 *   is its first delta), so every measured delivery of a delta variant is a delta (counted).
 * - server CPU per delivery: the herald processes' user + system time (/proc) over the same
 *   window, over the deliveries; it includes the HTTP publishes, the same in every variant. Redis's
 *   CPU is shown apart. No idle baseline is subtracted (bench/compression.ts subtracts none).
 * - the frame's parts: one subscriber's uncompressed frames, split into the WebSocket header, the
 *   Socket.IO envelope (`42["score",` … `]`), the payload (the fossil delta as a JSON string, or the
 *   whole object), the meta (and in it `"base"`), and the recovery offset.
 * - client CPU per delta: the deltas one subscriber received, applied again in a loop in this
 *   process (CPU time, `process.cpuUsage`): the client module's path (client/src/fossil.ts's
 *   `applyDelta`, UTF-8 decode, `JSON.parse`, as `HeraldClient` does) and fossil-delta's
 *   `applyDelta` alone; and, for the server's side, fossil-delta's `createDelta` per message.
 * - RSS per connection: the herald processes' RSS growth from before the subscribers connected to
 *   after the run, over the subscribers.
 * Correctness on the way: the first VERIFY (20) subscribers apply every delta they receive and
 * check that each rebuilt payload is the published one, in order; a mismatch fails the run.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { applyDelta as fossilApply, createDelta } from 'fossil-delta';
import { applyDelta as moduleApply } from '../client/src/fossil.js';
import { clientFrame, openRawEngine } from './raw-engine.js';
import { scoreUpdate } from './compression.js';
import { srcCommit } from './jitter.js';
import { cpuSeconds, cpuUsEach, heraldStack, pinToClientCpu, ROOT, rssBytes, type Stack } from './stacks.js';

export type DeltaVariant = 'whole' | 'compression' | 'delta' | 'delta + compression' | 'context' | 'delta + context';
/** `compression`: `WS_COMPRESSION=on` (each message deflated alone); `context`: `WS_COMPRESSION=context` (a window per connection). */
export const DELTA_VARIANTS: DeltaVariant[] = ['whole', 'compression', 'delta', 'delta + compression', 'context', 'delta + context'];

export interface DeltaOptions {
  subscribers: number;
  /** Messages a second published to the room. */
  rate: number;
  seconds: number;
  /** Times the eight runs (2 setups × 4 variants) are repeated, interleaved. */
  rounds: number;
  /** Replica counts: 1 (no Redis) and 2 (+ Redis). */
  setups: number[];
  /** The variants run (VARIANTS, comma-separated); absent in runs recorded before it existed: the first four. */
  variants?: DeltaVariant[];
  /** TRANSPORT: `uws` (the default, and in runs recorded before it existed) or `node`. */
  transport?: 'uws' | 'node';
}

export const DELTA_DEFAULTS: DeltaOptions = { subscribers: 1000, rate: 20, seconds: 10, rounds: 3, setups: [1, 2] };

export interface DeltaRow {
  replicas: number;
  variant: DeltaVariant;
  round: number;
  subscribers: number;
  /** Subscribers whose handshake negotiated permessage-deflate. */
  negotiated: number;
  /** Measured publishes (the warm-up ones not counted). */
  published: number;
  deliveries: number;
  /** Of the deliveries, how many were deltas. */
  deltaDeliveries: number;
  /** Mean uncompressed WebSocket payload (the Socket.IO frame) per delivery, bytes. */
  frameBytes: number;
  wireBytesPerDelivery: number;
  /** The herald processes' CPU, µs per delivery. */
  serverCpuUsPerDelivery: number;
  /** Redis's CPU, µs per delivery (0 without Redis). */
  redisCpuUsPerDelivery: number;
  /** Deltas applied and checked by the verifying subscribers. */
  verified: number;
  drainSeconds: number;
  /** The herald processes' RSS growth from before the subscribers connected to after the run, over the subscribers (absent in older runs). */
  rssBytesPerConnection?: number;
}

/** A frame's bytes by part (uncompressed; the WebSocket header included). */
export interface FrameParts {
  /** The WebSocket frame header (server frames are not masked). */
  header: number;
  /** `42["score",` … `,` … `,` … `]`. */
  envelope: number;
  /** The payload as it stands in the frame: the whole object, or the delta as a JSON string (quotes and escapes included). */
  payload: number;
  /** Of a delta's payload: the fossil delta's own bytes (before JSON escaping). */
  deltaBytes?: number;
  meta: number;
  /** Of the meta: `,"base":"<id>"`. */
  base?: number;
  /** The recovery offset Socket.IO appends, as a JSON string. */
  offset: number;
  total: number;
}

export interface DeltaApplyCpu {
  deltas: number;
  /** Mean fossil delta size, bytes. */
  meanDeltaBytes: number;
  /** The client module's apply path per delta (applyDelta + UTF-8 decode + JSON.parse), µs CPU. */
  moduleUs: number;
  /** client/src/fossil.ts's applyDelta alone, µs CPU. */
  moduleApplyOnlyUs: number;
  /** fossil-delta's applyDelta (checksum verified) per delta, µs CPU. */
  fossilDeltaUs: number;
  /** fossil-delta's createDelta per message (what a replica does once per message), µs CPU. */
  createUs: number;
  /** A client's whole work per delivery, µs CPU: `JSON.parse` of a whole message's Socket.IO frame text. */
  wholeFrameUs?: number;
  /** The same for a delta: `JSON.parse` of its frame text, then the module's apply path. */
  deltaFrameUs?: number;
}

export interface DeltaRun {
  generatedAt: string;
  /** The last commit that changed herald's src/ in the tree measured. */
  commit: string;
  machine: string;
  options: DeltaOptions;
  /** `JSON.stringify` of one score object, bytes. */
  payloadBytes: number;
  rows: DeltaRow[];
  whole: FrameParts;
  delta: FrameParts;
  apply: DeltaApplyCpu;
}

const ROOM = 'scores:epl-2026-27-md14-ars-che';
const HISTORY_ROOMS = 'scores:* delta';
/** Subscribers that apply and check every delta. */
const VERIFY = 20;
/** Publishes before the measured window. */
const WARMUP = 2;

interface Subscriber {
  socket: Socket;
  extensions: string;
  deliveries: number;
  deltas: number;
  /** Sum of the uncompressed Socket.IO frames' bytes over the counted deliveries. */
  frameBytes: number;
  /** Verifying subscribers: the last payload held, as JSON UTF-8. */
  held?: Uint8Array;
  verified: number;
  /** Frames kept by the first subscriber (uncompressed text), for the breakdown and the apply loop. */
  kept?: string[];
  error?: Error;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const latin1Bytes = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

/**
 * Opens an Engine.IO WebSocket offering permessage-deflate, connects the namespace and subscribes
 * to ROOM (asking for deltas when `delta`); resolves on the ack. `index` < VERIFY: applies and
 * checks every delta against `expected` (the published payloads as JSON, in order); 0: keeps frames.
 */
function subscriber(url: string, delta: boolean, index: number, expected: string[], context = false): Promise<Subscriber> {
  return new Promise((resolve, reject) => {
    const s: Subscriber = { socket: undefined as unknown as Socket, extensions: '', deliveries: 0, deltas: 0, frameBytes: 0, verified: 0, ...(index === 0 ? { kept: [] } : {}) };
    let settled = false;
    const fail = (err: Error) => {
      clearTimeout(timer);
      if (!settled) {
        settled = true;
        s.socket.destroy();
        reject(err);
      } else s.error ??= err;
    };
    const timer = setTimeout(() => fail(new Error('subscribe timed out')), 30_000);
    const subscribe = JSON.stringify(['subscribe', delta ? { room: ROOM, delta: 'fossil' } : { room: ROOM }]);
    const check = (t: string) => {
      const [, data, meta] = JSON.parse(t.slice(2)) as [string, unknown, { base?: string }];
      const n = s.deliveries - 1;
      let text: Uint8Array;
      if (meta.base !== undefined) {
        if (!s.held) throw new Error(`subscriber ${index}: a delta before any whole message`);
        text = moduleApply(s.held, data as string);
      } else text = utf8.encode(JSON.stringify(data));
      if (fromUtf8.decode(text) !== expected[n]) throw new Error(`subscriber ${index}: message ${n} rebuilt wrong`);
      if (meta.base !== undefined) s.verified++;
      s.held = text;
    };
    const text = (t: string) => {
      if (t.startsWith('42["score"')) {
        s.deliveries++;
        s.frameBytes += Buffer.byteLength(t);
        if (t.includes(',"base":"')) s.deltas++;
        if (s.kept && s.kept.length < 1000) s.kept.push(t);
        if (index < VERIFY) check(t);
      } else if (t === '2') s.socket.write(clientFrame('3'));
      else if (t.startsWith('0{')) s.socket.write(clientFrame('40'));
      else if (t.startsWith('40{')) s.socket.write(clientFrame(`420${subscribe}`));
      else if (t.startsWith('430')) {
        clearTimeout(timer);
        if (JSON.parse(t.slice(3))[0]?.ok !== true) fail(new Error(`subscribe refused: ${t}`));
        else {
          settled = true;
          resolve(s);
        }
      }
    };
    s.socket = openRawEngine(url, { opened: (e) => (s.extensions = e), text, fail }, context);
  });
}

const sum = (subs: Subscriber[], f: (s: Subscriber) => number) => subs.reduce((a, s) => a + f(s), 0);

async function publish(url: string, n: number): Promise<boolean> {
  const res = await fetch(`${url}/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room: ROOM, event: 'score', data: scoreUpdate(n) }) });
  await res.arrayBuffer();
  return res.status === 200;
}

/** Waits until every subscriber has `n` deliveries (bounded); returns the seconds it took. */
async function delivered(subs: Subscriber[], n: number, ms = 60_000): Promise<number> {
  const t0 = performance.now();
  while (sum(subs, (s) => Math.min(s.deliveries, n)) < n * subs.length && performance.now() - t0 < ms) {
    const err = subs.find((s) => s.error)?.error;
    if (err) throw err;
    await delay(20);
  }
  const err = subs.find((s) => s.error)?.error;
  if (err) throw err;
  return (performance.now() - t0) / 1000;
}

interface Measured {
  row: DeltaRow;
  kept: string[];
}

async function measure(replicas: number, variant: DeltaVariant, round: number, opts: DeltaOptions, expected: string[]): Promise<Measured> {
  const compression = variant.includes('compression') ? 'on' : variant.includes('context') ? 'context' : 'off';
  const delta = variant.startsWith('delta');
  const stack: Stack = await heraldStack(`deltas-${replicas}-${variant}`, opts.transport ?? 'uws', replicas, {
    ...(replicas === 1 ? { REDIS_URL: '' } : {}),
    WS_COMPRESSION: compression,
    HISTORY_ROOMS,
  });
  const heraldPids = stack.servers.map((p) => p.pid);
  const others = stack.all.filter((p) => !heraldPids.includes(p.pid)).map((p) => p.pid);
  const cpu = (pids: number[]) => pids.reduce((a, pid) => a + cpuSeconds(pid), 0);
  const rss = () => heraldPids.reduce((a, pid) => a + rssBytes(pid), 0);
  const subs: Subscriber[] = [];
  try {
    const rssBefore = rss();
    for (let i = 0; i < opts.subscribers; i += 100) {
      subs.push(...(await Promise.all(Array.from({ length: Math.min(100, opts.subscribers - i) }, (_, k) => subscriber(stack.urls[(i + k) % replicas]!, delta, i + k, expected, compression === 'context')))));
    }
    const negotiated = subs.filter((s) => /permessage-deflate/.test(s.extensions)).length;
    for (let n = 0; n < WARMUP; n++) {
      if (!(await publish(stack.urls[n % replicas]!, n))) throw new Error('warm-up publish refused');
      await delivered(subs, n + 1);
    }
    const total = Math.round(opts.rate * opts.seconds);
    const at = { deliveries: sum(subs, (s) => s.deliveries), deltas: sum(subs, (s) => s.deltas), frames: sum(subs, (s) => s.frameBytes), wire: sum(subs, (s) => s.socket.bytesRead) };
    const herald0 = cpu(heraldPids);
    const redis0 = cpu(others);
    const started = performance.now();
    let published = 0;
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / opts.rate;
      if (due > performance.now()) await delay(due - performance.now());
      const n = WARMUP + i;
      if (await publish(stack.urls[n % replicas]!, n)) published++;
    }
    if (published !== total) throw new Error(`${total - published} publishes refused`);
    const drainSeconds = await delivered(subs, WARMUP + total);
    const heraldCpu = cpu(heraldPids) - herald0;
    const redisCpu = cpu(others) - redis0;
    const deliveries = sum(subs, (s) => s.deliveries) - at.deliveries;
    if (deliveries !== total * subs.length) throw new Error(`${deliveries} of ${total * subs.length} delivered`);
    const row: DeltaRow = {
      replicas,
      variant,
      round,
      subscribers: subs.length,
      negotiated,
      published,
      deliveries,
      deltaDeliveries: sum(subs, (s) => s.deltas) - at.deltas,
      frameBytes: (sum(subs, (s) => s.frameBytes) - at.frames) / deliveries,
      wireBytesPerDelivery: (sum(subs, (s) => s.socket.bytesRead) - at.wire) / deliveries,
      serverCpuUsPerDelivery: cpuUsEach(heraldCpu, deliveries),
      redisCpuUsPerDelivery: cpuUsEach(redisCpu, deliveries),
      verified: sum(subs, (s) => s.verified),
      drainSeconds,
      rssBytesPerConnection: (rss() - rssBefore) / subs.length,
    };
    return { row, kept: subs[0]!.kept!.slice(WARMUP) };
  } finally {
    for (const s of subs) s.socket.destroy();
    await stack.stop();
  }
}

/** One frame's bytes by part. */
export function frameParts(frame: string): FrameParts {
  const [, data, meta, offset] = JSON.parse(frame.slice(2)) as [string, unknown, Record<string, unknown>, unknown];
  const bytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v));
  const total = Buffer.byteLength(frame);
  const header = total < 126 ? 2 : total < 65_536 ? 4 : 10;
  const payload = bytes(data);
  const metaBytes = bytes(meta);
  const offsetBytes = offset === undefined ? 0 : bytes(offset);
  const parts: FrameParts = { header, envelope: total - payload - metaBytes - offsetBytes, payload, meta: metaBytes, offset: offsetBytes, total: total + header };
  if (typeof meta.base === 'string') {
    parts.deltaBytes = (data as string).length;
    parts.base = Buffer.byteLength(`,"base":${JSON.stringify(meta.base)}`);
  }
  return parts;
}

/** The mean of each part over `frames`. */
function meanParts(frames: string[]): FrameParts {
  const all = frames.map(frameParts);
  const mean = (k: keyof FrameParts) => (all.some((p) => p[k] !== undefined) ? all.reduce((a, p) => a + (p[k] ?? 0), 0) / all.length : undefined);
  const out = {} as FrameParts;
  for (const k of ['header', 'envelope', 'payload', 'deltaBytes', 'meta', 'base', 'offset', 'total'] as const) {
    const v = mean(k);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** CPU µs per call of `fn` over `items`, repeated until at least `minSeconds` of CPU. */
function cpuPer<T>(items: T[], fn: (x: T) => unknown, minSeconds = 0.5): number {
  for (const x of items) fn(x); // warm-up
  let calls = 0;
  const t0 = process.cpuUsage();
  let used = 0;
  while (used < minSeconds * 1e6) {
    for (const x of items) fn(x);
    calls += items.length;
    const d = process.cpuUsage(t0);
    used = d.user + d.system;
  }
  return used / calls;
}

/** Client CPU per delta (and the server's createDelta per message), from the deltas one subscriber received. */
export function applyCpu(deltaFrames: string[], expected: string[], wholeFrames: string[] = []): DeltaApplyCpu {
  const byText = new Map(expected.map((t, n) => [t, n]));
  const pairs: { base: Uint8Array; delta: string; deltaBytes: Uint8Array; target: Uint8Array; frame: string }[] = [];
  // Each delta frame follows the payload it applies to; rebuild the chain from the first frame's base.
  let held: Uint8Array | undefined;
  for (const frame of deltaFrames) {
    const [, data, meta] = JSON.parse(frame.slice(2)) as [string, unknown, { base?: string }];
    if (meta.base === undefined) {
      held = utf8.encode(JSON.stringify(data));
      continue;
    }
    if (!held) continue;
    const target = moduleApply(held, data as string);
    if (!byText.has(fromUtf8.decode(target))) throw new Error('a kept delta does not rebuild a published payload');
    pairs.push({ base: held, delta: data as string, deltaBytes: latin1Bytes(data as string), target, frame });
    held = target;
  }
  if (pairs.length === 0) throw new Error('no delta to apply');
  return {
    deltas: pairs.length,
    meanDeltaBytes: pairs.reduce((a, p) => a + p.deltaBytes.length, 0) / pairs.length,
    moduleUs: cpuPer(pairs, (p) => JSON.parse(fromUtf8.decode(moduleApply(p.base, p.delta)))),
    moduleApplyOnlyUs: cpuPer(pairs, (p) => moduleApply(p.base, p.delta)),
    fossilDeltaUs: cpuPer(pairs, (p) => fossilApply(p.base, p.deltaBytes, { verifyChecksum: true })),
    createUs: cpuPer(pairs, (p) => createDelta(p.base, p.target)),
    ...(wholeFrames.length ? { wholeFrameUs: cpuPer(wholeFrames, (t) => JSON.parse(t.slice(2))) } : {}),
    deltaFrameUs: cpuPer(pairs, (p) => {
      const [, delta] = JSON.parse(p.frame.slice(2)) as [string, string];
      return JSON.parse(fromUtf8.decode(moduleApply(p.base, delta)));
    }),
  };
}

export function machineDescription(): string {
  const redis = (() => {
    try {
      return /v=(\S+)/.exec(execFileSync('redis-server', ['--version']).toString())?.[1];
    } catch {
      return undefined;
    }
  })();
  return `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${execFileSync('bash', ['-c', '. /etc/os-release && echo $PRETTY_NAME']).toString().trim()}, Node ${process.version}${redis ? `, Redis ${redis}` : ''}`;
}

/** The whole comparison: `rounds` × (each setup × each variant), then the breakdown and the client's apply cost. */
export async function deltaBench(opts: DeltaOptions = DELTA_DEFAULTS, log: (line: string) => void = () => {}): Promise<DeltaRun> {
  const expected = Array.from({ length: WARMUP + Math.round(opts.rate * opts.seconds) }, (_, n) => JSON.stringify(scoreUpdate(n)));
  const rows: DeltaRow[] = [];
  let wholeFrames: string[] = [];
  let deltaFrames: string[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    for (const replicas of opts.setups) {
      for (const variant of opts.variants ?? DELTA_VARIANTS) {
        const { row, kept } = await measure(replicas, variant, round, opts, expected);
        log(formatDeltaRow(row));
        rows.push(row);
        if (variant === 'whole' && wholeFrames.length === 0) wholeFrames = kept;
        if (variant === 'delta' && deltaFrames.length === 0) deltaFrames = kept;
      }
    }
  }
  // The delta chain needs its base: the warm-up's whole message is not kept, so start from a whole one rebuilt here.
  const chain = ['42' + JSON.stringify(['score', JSON.parse(expected[WARMUP - 1]!), {}]), ...deltaFrames];
  return {
    generatedAt: new Date().toISOString(),
    commit: srcCommit(),
    machine: machineDescription(),
    options: opts,
    payloadBytes: Buffer.byteLength(expected[0]!),
    rows,
    whole: meanParts(wholeFrames),
    delta: meanParts(deltaFrames.filter((t) => t.includes(',"base":"'))),
    apply: applyCpu(chain, expected, wholeFrames),
  };
}

export function formatDeltaRow(r: DeltaRow): string {
  return `round ${r.round}, ${r.replicas} replica${r.replicas > 1 ? 's + Redis' : ''}, ${r.variant.padEnd(19)}: ${r.negotiated}/${r.subscribers} negotiated, ${r.deliveries} delivered (${r.deltaDeliveries} deltas, ${r.verified} checked), ${r.frameBytes.toFixed(1)}-byte frame -> ${r.wireBytesPerDelivery.toFixed(1)} bytes on the wire, herald CPU ${r.serverCpuUsPerDelivery.toFixed(2)} µs per delivery (Redis ${r.redisCpuUsPerDelivery.toFixed(2)}), drained ${r.drainSeconds.toFixed(2)} s after the last publish${r.rssBytesPerConnection === undefined ? '' : `, RSS +${(r.rssBytesPerConnection / 1024).toFixed(1)} KiB per connection`}`;
}

/** Per setup and variant: the mean over rounds of each figure, with the CPU's spread. */
export function deltaSummary(rows: DeltaRow[]) {
  const keys = [...new Set(rows.map((r) => `${r.replicas}|${r.variant}`))];
  return keys.map((k) => {
    const rs = rows.filter((r) => `${r.replicas}|${r.variant}` === k);
    const mean = (f: (r: DeltaRow) => number) => rs.reduce((a, r) => a + f(r), 0) / rs.length;
    const cpus = rs.map((r) => r.serverCpuUsPerDelivery);
    return {
      replicas: rs[0]!.replicas,
      variant: rs[0]!.variant,
      rounds: rs.length,
      negotiated: Math.min(...rs.map((r) => r.negotiated)),
      subscribers: rs[0]!.subscribers,
      deliveries: rs.reduce((a, r) => a + r.deliveries, 0),
      deltaDeliveries: rs.reduce((a, r) => a + r.deltaDeliveries, 0),
      verified: rs.reduce((a, r) => a + r.verified, 0),
      frameBytes: mean((r) => r.frameBytes),
      wireBytesPerDelivery: mean((r) => r.wireBytesPerDelivery),
      serverCpuUsPerDelivery: mean((r) => r.serverCpuUsPerDelivery),
      serverCpuMin: Math.min(...cpus),
      serverCpuMax: Math.max(...cpus),
      redisCpuUsPerDelivery: mean((r) => r.redisCpuUsPerDelivery),
      drainSeconds: Math.max(...rs.map((r) => r.drainSeconds)),
      rssBytesPerConnection: rs.every((r) => r.rssBytesPerConnection !== undefined) ? mean((r) => r.rssBytesPerConnection!) : undefined,
    };
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  pinToClientCpu();
  const env = process.env;
  const opts: DeltaOptions = {
    subscribers: Number(env.SUBSCRIBERS ?? DELTA_DEFAULTS.subscribers),
    rate: Number(env.RATE ?? DELTA_DEFAULTS.rate),
    seconds: Number(env.SECONDS ?? DELTA_DEFAULTS.seconds),
    rounds: Number(env.ROUNDS ?? DELTA_DEFAULTS.rounds),
    setups: (env.SETUPS ?? DELTA_DEFAULTS.setups.join(',')).split(',').map(Number),
    variants: (env.VARIANTS?.split(',') ?? DELTA_VARIANTS) as DeltaVariant[],
    transport: env.TRANSPORT === 'node' ? 'node' : 'uws',
  };
  for (const v of opts.variants!) if (!DELTA_VARIANTS.includes(v)) throw new Error(`VARIANTS: unknown variant ${v} (${DELTA_VARIANTS.join(', ')})`);
  const run = await deltaBench(opts, console.log);
  console.log(JSON.stringify({ whole: run.whole, delta: run.delta, apply: run.apply }, null, 2));
  if (process.argv.includes('--record')) {
    const file = join(ROOT, 'bench/results.json');
    const results = JSON.parse(readFileSync(file, 'utf8')) as { deltasSeparate?: DeltaRun };
    results.deltasSeparate = run;
    writeFileSync(file, JSON.stringify(results, null, 2));
    console.log('# deltas: recorded in bench/results.json; `node --import tsx bench/run.ts --report` shows it');
  }
}
