/**
 * A load-generating client process: holds many raw WebSocket connections speaking Socket.IO (the
 * same wire module as the k6 scripts) and reports to its parent over IPC. Kept cheap, so that the
 * clients are not the bottleneck: frames are counted without parsing unless a scenario needs the
 * content, and latency is sampled.
 */
import { connectFrame, eventFrame, parseFrame, PONG, socketUrl } from '../lib/socketio.js';
import type { ConnectionReport, WorkerCommand, WorkerReport } from './protocol.js';
import { EVENT_PREFIX, PUSHER_PONG, pusherSocketUrl, subscribeFrame, SYSTEM_PREFIX } from './pusher.js';
import { WsClient } from './wsclient.js';
import { SseClient } from './sseclient.js';
import { applyDelta } from '../../client/src/fossil.js';

const MAX_SAMPLES = 50_000;

/** A connection and its counters (what it reports, plus what it needs to reconnect). */
interface Conn extends ConnectionReport {
  /** Its WebSocket, or its event stream (`sse` plans). */
  ws: { readonly isOpen: boolean; terminate(): void } | undefined;
  url: string;
  localAddress: string;
  /** Sequence numbers seen in its room (a bitmap: publishes are concurrent, so not in order). */
  seen: Uint8Array;
  /** The last message id received (its `since` when it reconnects) and the last ack offset. */
  lastId: string | undefined;
  offset: string | undefined;
  /** With deltas: the payload (JSON, UTF-8) of the last message, what the next delta applies to. */
  text: Uint8Array | undefined;
  /** An event stream's `lastEventId`: its `Last-Event-ID` when it reconnects. */
  lastEventId: string | undefined;
}

function newConn(url: string, room: string, localAddress: string): Conn {
  return {
    ws: undefined, url, room, localAddress, seen: new Uint8Array(16), lastId: undefined, offset: undefined, text: undefined, lastEventId: undefined,
    received: 0, unique: 0, duplicates: 0, reconnects: 0, recovered: 0, unrecovered: 0,
  };
}

let conns: Conn[] = [];
let plan: Extract<WorkerCommand, { cmd: 'open' }> | undefined;
/** Events received, in total (for sampling) and since the last report (what reports carry). */
let delivered = 0;
let deliveredSinceReport = 0;
let samples: number[] = [];
let sampled = 0;
let ackCounter = 0;
const pendingAcks = new Map<number, (args: unknown[]) => void>();
let failedConnects = 0;
let bytes = 0;
let deltas = 0;
let wrongBases = 0;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

function sample(ms: number): void {
  sampled++;
  if (samples.length < MAX_SAMPLES) samples.push(ms);
  else {
    const i = Math.floor(Math.random() * sampled);
    if (i < MAX_SAMPLES) samples[i] = ms;
  }
}

/** herald's own events (`herald:hello`, …) are not published messages and are not counted. */
const SYSTEM_EVENT = Buffer.from('42["herald:');

/**
 * Whether `buf[start, end)` starts with `prefix`. A loop over a dozen bytes: a worker profile showed
 * `Buffer.compare` (a native call per frame) at 4–5 % of the client's time.
 */
function hasPrefix(buf: Buffer, start: number, end: number, prefix: Buffer): boolean {
  if (end - start < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[start + i] !== prefix[i]) return false;
  return true;
}

/** Handles an event frame, `buf[start, end)`: counting needs no string, only sampling does. */
function onEvent(c: Conn, buf: Buffer, start: number, end: number): void {
  if (hasPrefix(buf, start, end, SYSTEM_EVENT)) return;
  bytes += end - start;
  if (plan!.delta) return onDeltaEvent(c, buf, start, end);
  if (!counted()) return;
  const f = parseFrame(buf.toString('utf8', start, end));
  if (f.type !== 'event') return;
  record(c, f.args[0] as Payload | undefined, (f.args[1] as { id?: string } | undefined)?.id);
}

/**
 * An event in a delta subscription: every one is parsed, a delta applied to the last message held
 * (as the client module does), never to another: one on a base that is not the last id counts in
 * `wrongBases` and leaves the connection's payload unknown until its next whole message.
 */
function onDeltaEvent(c: Conn, buf: Buffer, start: number, end: number): void {
  const f = parseFrame(buf.toString('utf8', start, end));
  if (f.type !== 'event') return;
  const meta = f.args[1] as { id?: string; base?: string } | undefined;
  let data = f.args[0];
  if (meta?.base !== undefined) {
    if (meta.base !== c.lastId || !c.text || typeof data !== 'string') {
      wrongBases++;
      c.text = undefined;
      return;
    }
    c.text = applyDelta(c.text, data);
    data = JSON.parse(fromUtf8.decode(c.text));
    deltas++;
  } else c.text = utf8.encode(JSON.stringify(data));
  if (meta?.id) c.lastId = meta.id;
  if (counted()) record(c, data as Payload | undefined, meta?.id);
}

/** A published message's data: its room's sequence number and when it was sent. */
type Payload = { seq?: number; sent?: number };

/** Counts a delivery; true when the caller must look inside it (`record`), false for the cheap path. */
function counted(): boolean {
  delivered++;
  deliveredSinceReport++;
  // Cheap path: count, and look inside only one frame in `sampleEvery`.
  return plan!.track !== 'count' || delivered % plan!.sampleEvery === 0;
}

/** Samples a delivery's latency and, when tracking sequences, checks it for gaps and duplicates. */
function record(c: Conn, data: Payload | undefined, id: string | undefined): void {
  if (typeof data?.sent === 'number') sample(Date.now() - data.sent);
  if (plan!.track !== 'seq' || typeof data?.seq !== 'number') return;
  c.received++;
  if (id) c.lastId = id;
  const byte = data.seq >> 3;
  if (byte >= c.seen.length) {
    const grown = new Uint8Array(Math.max(byte + 1, c.seen.length * 2));
    grown.set(c.seen);
    c.seen = grown;
  }
  const bit = 1 << (data.seq & 7);
  if (c.seen[byte]! & bit) c.duplicates++;
  else {
    c.seen[byte]! |= bit;
    c.unique++;
  }
}

/**
 * A Pusher-protocol frame (soketi), `buf[start, end)`. Every server frame is JSON starting with
 * `{"event":"`; app events are counted without decoding, the protocol's own (`pusher:…`,
 * `pusher_internal:…`) are parsed. Event data is a string the publisher JSON-encoded.
 */
function onPusherFrame(c: Conn, ws: WsClient, buf: Buffer, start: number, end: number, done: (ok: boolean) => void): void {
  const at = start + EVENT_PREFIX.length;
  if (hasPrefix(buf, start, end, EVENT_PREFIX) && end - at > SYSTEM_PREFIX.length && !hasPrefix(buf, at, end, SYSTEM_PREFIX)) {
    bytes += end - start;
    if (!counted()) return;
    const m = JSON.parse(buf.toString('utf8', start, end)) as { data?: string };
    return record(c, typeof m.data === 'string' ? (JSON.parse(m.data) as Payload) : undefined, undefined);
  }
  const m = JSON.parse(buf.toString('utf8', start, end)) as { event?: string };
  if (m.event === 'pusher:connection_established') ws.send(subscribeFrame(c.room));
  else if (m.event === 'pusher_internal:subscription_succeeded') done(true);
  else if (m.event === 'pusher:ping') ws.send(PUSHER_PONG);
  else if (m.event === 'pusher:error') done(false);
}

/**
 * Opens one connection, joins the namespace and subscribes (with `since` when reconnecting); with
 * the Pusher protocol, connects to the app and subscribes to the room's channel (no `since`).
 */
function open(c: Conn, since?: string): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean) => {
      if (!settled) {
        settled = true;
        resolve(ok);
      }
    };
    const app = plan!.pusher;
    if (app) {
      const ws: WsClient = new WsClient(pusherSocketUrl(c.url, app), {
        open: () => {},
        closed: () => done(false),
        text: (buf, start, end) => onPusherFrame(c, ws, buf, start, end, done),
      }, { localAddress: c.localAddress });
      c.ws = ws;
      return;
    }
    const ws: WsClient = new WsClient(socketUrl(c.url), {
      open: () => {},
      closed: () => done(false),
      text: (buf, start, end) => {
        // "42": an event (the hot path), recognized without decoding the frame.
        if (buf[start] === 0x34 && buf[start + 1] === 0x32) return onEvent(c, buf, start, end);
        const f = parseFrame(buf.toString('utf8', start, end));
        if (f.type === 'ping') ws.send(PONG);
        else if (f.type === 'open') ws.send(connectFrame(plan!.auth));
        else if (f.type === 'refused') done(false);
        else if (f.type === 'connected') {
          const id = ++ackCounter;
          pendingAcks.set(id, (args) => {
            const ack = args[0] as { ok?: boolean; recovered?: boolean; offset?: string };
            if (ack?.offset) c.offset = ack.offset;
            if (since !== undefined) {
              if (ack?.recovered) c.recovered++;
              else c.unrecovered++;
            }
            done(ack?.ok === true);
          });
          const delta = plan!.delta ? { delta: 'fossil' } : {};
          ws.send(eventFrame('subscribe', [since === undefined && !plan!.delta ? c.room : { room: c.room, ...delta, ...(since !== undefined ? { since } : {}) }], id));
        } else if (f.type === 'ack' && f.id !== undefined) {
          const cb = pendingAcks.get(f.id);
          pendingAcks.delete(f.id);
          cb?.(f.args);
        }
      },
    }, { localAddress: c.localAddress });
    c.ws = ws;
  });
}

/**
 * Opens one event stream of the connection's room (`GET /v1/stream?room=`), with `Last-Event-ID`
 * when coming back; it is in once `herald:subscribed {ok: true}` arrives. Published events (any
 * name not starting `herald:`) are counted like Socket.IO's: `data:` is `{"data": {seq, sent},
 * "meta": {room, id, ts}}`, parsed only when the plan needs to look inside.
 */
function openSse(c: Conn, lastEventId?: string): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean) => {
      if (!settled) {
        settled = true;
        resolve(ok);
      }
    };
    const url = `${c.url}/v1/stream?room=${encodeURIComponent(c.room)}`;
    const stream: SseClient = new SseClient(url, {
      open: (status) => {
        if (status !== 200) done(false);
      },
      closed: () => done(false),
      event: (name, data, id) => {
        c.lastEventId = id || undefined;
        if (name.startsWith('herald:')) {
          if (name !== 'herald:subscribed') {
            // A stream that says "another replica" (`herald:disconnect` before it is in) is not in.
            if (name === 'herald:disconnect') done(false);
            return;
          }
          const ack = (JSON.parse(data) as { data: { ok?: boolean; recovered?: boolean; offset?: string } }).data;
          if (ack.offset) c.offset = ack.offset;
          if (lastEventId !== undefined) {
            if (ack.recovered) c.recovered++;
            else c.unrecovered++;
          }
          done(ack.ok === true);
          return;
        }
        bytes += data.length;
        if (!counted()) return;
        const body = JSON.parse(data) as { data?: Payload; meta?: { id?: string } };
        record(c, body.data, body.meta?.id);
      },
    }, { localAddress: c.localAddress, ...(lastEventId !== undefined ? { headers: { 'last-event-id': lastEventId } } : {}) });
    c.ws = stream;
  });
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

function report(): WorkerReport {
  const r: WorkerReport = {
    cmd: 'report',
    connected: conns.filter((c) => c.ws?.isOpen).length,
    failedConnects,
    delivered: deliveredSinceReport,
    samples,
    bytes,
    deltas,
    wrongBases,
    perConnection: conns.map(({ room, received, unique, duplicates, reconnects, recovered, unrecovered }) => ({ room, received, unique, duplicates, reconnects, recovered, unrecovered })),
  };
  samples = [];
  sampled = 0;
  deliveredSinceReport = 0;
  bytes = 0;
  deltas = 0;
  wrongBases = 0;
  return r;
}

process.on('message', async (msg: WorkerCommand) => {
  try {
    if (msg.cmd === 'open') {
      plan = msg;
      const mine = Array.from({ length: msg.count }, (_, i) =>
        newConn(msg.urls[i % msg.urls.length]!, msg.rooms[(msg.roomOffset + i) % msg.rooms.length]!, msg.localAddresses[i % msg.localAddresses.length]!),
      );
      conns.push(...mine);
      await pool(mine, msg.concurrency, async (c) => {
        if (!(await (msg.sse ? openSse(c) : open(c)))) failedConnects++;
      });
      process.send!({ cmd: 'opened', connected: conns.filter((c) => c.ws?.isOpen).length, failedConnects });
    } else if (msg.cmd === 'report') {
      process.send!(report());
    } else if (msg.cmd === 'drop') {
      // Recovery: cut a share of the connections abruptly; each comes back with `since`.
      const victims = conns.filter((_, i) => i % msg.every === msg.phase % msg.every);
      for (const c of victims) c.ws?.terminate();
      await pool(victims, msg.concurrency, async (c) => {
        c.reconnects++;
        if (!(await (plan!.sse ? openSse(c, c.lastEventId) : open(c, c.lastId ?? c.offset)))) failedConnects++;
      });
      process.send!({ cmd: 'dropped', count: victims.length });
    } else if (msg.cmd === 'churn') {
      // Connect, subscribe, disconnect, `cycles` times per slot, `concurrency` slots at once.
      let ok = 0;
      let failed = 0;
      const started = Date.now();
      await pool(
        Array.from({ length: msg.cycles }, (_, i) => i),
        msg.concurrency,
        async (i) => {
          const c = newConn(msg.urls[i % msg.urls.length]!, msg.rooms[i % msg.rooms.length]!, msg.localAddresses[i % msg.localAddresses.length]!);
          if (await open(c)) ok++;
          else failed++;
          c.ws?.terminate();
        },
      );
      process.send!({ cmd: 'churned', ok, failed, ms: Date.now() - started });
    } else if (msg.cmd === 'close') {
      for (const c of conns) c.ws?.terminate();
      conns = [];
      // Failures belong to the connections just closed, not to the next scenario's.
      failedConnects = 0;
      process.send!({ cmd: 'closed' });
    }
  } catch (err) {
    process.send!({ cmd: 'error', message: (err as Error).stack ?? String(err) });
  }
});

// The coordinator is done with this worker: exit normally (a CPU profile, if asked for, is written).
process.on('disconnect', () => process.exit(0));

process.send!({ cmd: 'ready' });
