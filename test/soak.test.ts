import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { io as connect, type Socket } from 'socket.io-client';
import { HeraldClient } from '../client/src/index.js';
import { DroppingRelay } from '../loadtest/harness/jitter.js';
import { SseClient } from '../loadtest/harness/sseclient.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { score } from './helpers/scores.js';
import { waitFor } from './helpers/wait.js';

/**
 * The soak: what production does at once, for SOAK_SECONDS (default 120; longer on demand,
 * e.g. `SOAK_SECONDS=900 node --import tsx --test test/soak.test.ts`).
 *
 * Three replicas (uWS, node, uWS) + one Redis, behind a TCP relay that balances new connections
 * round-robin and resets them all now and then. A publisher posts messages of varied sizes into
 * eight history rooms and four plain rooms, to any replica. Subscribers with real
 * socket.io-client mix what applications do: zero-code recovery only; the explicit `since`
 * contract on every connect (with built-in recovery on too, as socket.io-client 4.6+ always
 * sends its session), with and without a plain room in the session; slow readers that stop
 * reading their socket for seconds; live-score subscribers through the client module (client/)
 * asking for fossil deltas in a delta room that is also conflated (HISTORY_ROOMS ` delta`,
 * CONFLATE_ROOMS), one of them a slow reader; Server-Sent Events readers of history rooms and of
 * the score room, resuming with `Last-Event-ID` after every cut, one of them a slow reader.
 * Meanwhile: connection resets, a `CLIENT KILL TYPE pubsub`,
 * a drain of one replica (a new one takes its place), and a backend unsubscribing a user from a
 * room while that user's connection is down.
 *
 * Checked at the end, for every subscriber and every history room it follows: every
 * acknowledged message after its first position, once and in order, or an explicit gap
 * (`herald:reset`, `recovered: false`), which this scenario must not need; in plain rooms no
 * duplicate; every score the module hands the application is exactly the published payload of
 * that id (never a delta applied on a wrong base: no mismatch either), every one of them for
 * readers that keep up, and for the slow one (whose score room may be conflated) in order and
 * ending with the newest; the unsubscribed user gets nothing published there after the backend's answer; and
 * the replicas' heap and Redis's memory stay under the bounds below.
 */
const SECONDS = Number(process.env.SOAK_SECONDS ?? 120);
const RATE = 40; // publishes per second
const HISTORY = Array.from({ length: 8 }, (_, i) => `h:${i}`);
/** A busy history room the slow readers (and a few healthy clients) follow: 20 × 30 KB a second. */
const FIREHOSE = 'h:firehose';
const FIREHOSE_RATE = 20;
const PLAIN = Array.from({ length: 4 }, (_, i) => `p:${i}`);
const SIZES: [bytes: number, weight: number][] = [[20, 40], [500, 30], [4_000, 20], [30_000, 10]];
const CLIENTS = 24;
/** The live-score room: history, fossil deltas for who asks, conflated for slow readers. */
const SCORE = 'd:score';
const SCORE_RATE = 10;
/** Client-module subscribers of SCORE asking for deltas; the last one is a slow reader (also in FIREHOSE). */
const DELTA_CLIENTS = 4;
/** Event-stream readers: [rooms, slow]. The slow one follows FIREHOSE through the relay that stops reading. */
const SSE_READERS: [string[], boolean][] = [
  [['h:1', 'h:4', SCORE], false],
  [['h:2', 'h:6', SCORE], false],
  [['h:0', SCORE], false],
  [['h:3', FIREHOSE], true],
];
const HEAP_BOUND = 256 * 1024 * 1024;
const REDIS_BOUND = 256 * 1024 * 1024;
const KEY = 'soak-publish-key-0123456789';
const CONTROL = 'soak-control-key-0123456789';
const SECRET = 'soak-jwt-secret-0123456789-0123456789';

type Kind = 'zero' | 'since+plain' | 'since' | 'slow';
const KINDS: Kind[] = ['zero', 'since+plain', 'since', 'slow'];

interface Seen {
  id: string;
  at: number;
}

/** One subscriber and everything it saw. */
interface Subscriber {
  user: string;
  kind: Kind;
  socket: Socket;
  rooms: string[];
  got: Map<string, Seen[]>;
  /** Where its stream starts in each history room: the offset of its first subscribe ack. */
  start: Map<string, string>;
  /** Explicit gaps herald declared, as (room, when, what). */
  gaps: { room: string; at: number; what: string }[];
  /** The last id it has in each room (since client), or undefined. */
  position: Map<string, string>;
  connects: number;
  notRecovered: number;
}

const rand = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)]!;

function size(): number {
  const total = SIZES.reduce((n, [, w]) => n + w, 0);
  let r = Math.random() * total;
  for (const [bytes, w] of SIZES) if ((r -= w) < 0) return bytes;
  return SIZES[0]![0];
}

async function token(user: string): Promise<string> {
  return new SignJWT({ sub: user, rooms: ['h:*', 'p:*', 'd:*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(new TextEncoder().encode(SECRET));
}

function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am - bm || as - bs;
}

async function post(url: string, path: string, key: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: res.status, body: await res.json().catch(() => undefined) };
}

async function subscriber(url: string, i: number): Promise<Subscriber> {
  const kind = KINDS[i % KINDS.length]!;
  const user = `u${i}`;
  const history = [HISTORY[i % HISTORY.length]!, HISTORY[(i + 3) % HISTORY.length]!, HISTORY[(i + 5) % HISTORY.length]!];
  const rooms = kind === 'since+plain' ? [...history.slice(0, 2), PLAIN[i % PLAIN.length]!] : history;
  if (kind === 'slow' || i % 5 === 0) rooms.push(FIREHOSE);
  const socket = connect(url, { transports: ['websocket'], forceNew: true, auth: { token: await token(user) }, reconnectionDelay: 200, reconnectionDelayMax: 1000 });
  const s: Subscriber = { user, kind, socket, rooms, got: new Map(rooms.map((r) => [r, []])), start: new Map(), gaps: [], position: new Map(), connects: 0, notRecovered: 0 };
  socket.on('m', (_data: unknown, meta: { room: string; id: string }) => {
    s.got.get(meta.room)?.push({ id: meta.id, at: Date.now() });
    s.position.set(meta.room, meta.id);
  });
  socket.on('herald:reset', (r: { room: string; code: string; offset?: string }) => {
    s.gaps.push({ room: r.room, at: Date.now(), what: `herald:reset ${r.code}` });
    if (r.offset) s.position.set(r.room, r.offset);
  });
  const subscribeAll = async (withSince: boolean) => {
    for (const room of rooms) {
      const since = withSince && room.startsWith('h:') ? s.position.get(room) : undefined;
      const ack = (await socket.timeout(10_000).emitWithAck('subscribe', since ? { room, since } : room)) as { ok: boolean; offset?: string; recovered?: boolean; error?: unknown };
      if (!ack.ok) throw new Error(`${user} subscribe ${room}: ${JSON.stringify(ack.error)}`);
      if (since && ack.recovered !== true) s.gaps.push({ room, at: Date.now(), what: `subscribe since ${since}: recovered ${ack.recovered}` });
      if (ack.offset && !s.start.has(room)) s.start.set(room, ack.offset);
      if (ack.offset && !s.position.has(room)) s.position.set(room, ack.offset);
    }
  };
  const ready = new Promise<void>((resolve, reject) => {
    socket.on('connect', () => {
      s.connects++;
      const first = s.connects === 1;
      if (!first && !socket.recovered) s.notRecovered++;
      if (kind === 'since' || kind === 'since+plain') {
        // The explicit contract: on every connect, subscribe with the last id seen.
        subscribeAll(!first).then(first ? resolve : undefined, first ? reject : () => {});
      } else if (first) {
        subscribeAll(false).then(resolve, reject);
      } else if (!socket.recovered) {
        // The client contract's zero-code snippet: a session that was not recovered subscribes again and reloads.
        for (const room of rooms) s.gaps.push({ room, at: Date.now(), what: 'reconnect not recovered' });
        void subscribeAll(false).catch(() => {});
      }
    });
  });
  await ready;
  return s;
}


/** A received message: its id and payload. */
interface Got {
  id: string;
  data: unknown;
}

/** A live-score page on the client module, asking for deltas. */
interface DeltaSubscriber {
  user: string;
  slow: boolean;
  socket: Socket;
  herald: HeraldClient;
  got: Map<string, Got[]>;
  start: Map<string, string>;
  gaps: { room: string; at: number; what: string }[];
  connects: number;
}

async function deltaSubscriber(url: string, i: number, slow: boolean): Promise<DeltaSubscriber> {
  const user = `d${i}`;
  const socket = connect(url, { transports: ['websocket'], forceNew: true, auth: { token: await token(user) }, reconnectionDelay: 200, reconnectionDelayMax: 1000 });
  const s: DeltaSubscriber = { user, slow, socket, herald: undefined as unknown as HeraldClient, got: new Map(), start: new Map(), gaps: [], connects: 0 };
  made.push({ stop: () => socket.close() });
  socket.on('connect', () => s.connects++);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  s.herald = new HeraldClient(socket, {
    onReset: (room, reason) => s.gaps.push({ room, at: Date.now(), what: `client module: ${reason}` }),
    onError: (room, err) => s.gaps.push({ room, at: Date.now(), what: `re-subscribe failed: ${String(err)}` }),
  });
  const rooms = slow ? [SCORE, FIREHOSE] : [SCORE];
  for (const room of rooms) s.got.set(room, []);
  s.herald.on('s', (data, meta) => s.got.get(meta.room)?.push({ id: meta.id, data }));
  s.herald.on('m', (_data, meta) => s.got.get(meta.room)?.push({ id: meta.id, data: undefined }));
  for (const room of rooms) {
    const ack = await s.herald.subscribe(room, room === SCORE ? { delta: 'fossil' } : {});
    if (ack.offset) s.start.set(room, ack.offset);
  }
  return s;
}

/** An event-stream reader that comes back with `Last-Event-ID` whenever its stream ends, until `stop`. */
interface SseReader {
  n: number;
  rooms: string[];
  slow: boolean;
  got: Map<string, Got[]>;
  start: Map<string, string>;
  gaps: { room: string; at: number; what: string }[];
  streams: number;
  stop(): void;
}

/** Every reader and client-module socket made, stopped after the test whatever happened. */
const made: { stop(): void }[] = [];

async function sseReader(url: string, n: number, rooms: string[], slow: boolean): Promise<SseReader> {
  const auth = { authorization: `Bearer ${await token(`e${n}`)}` };
  const query = rooms.map((r) => `room=${encodeURIComponent(r)}`).join('&');
  const r: SseReader = { n, rooms, slow, got: new Map(rooms.map((room) => [room, []])), start: new Map(), gaps: [], streams: 0, stop: () => {} };
  let lastEventId = '';
  let stopped = false;
  let current: SseClient | undefined;
  let timer: NodeJS.Timeout | undefined;
  r.stop = () => {
    stopped = true;
    clearTimeout(timer);
    current?.terminate();
  };
  let opened!: () => void;
  const first = new Promise<void>((resolve) => (opened = resolve));
  const open = () => {
    r.streams++;
    const subscribed = new Set<string>();
    const client: SseClient = new SseClient(`${url}/v1/stream?${query}`, {
      open: () => {},
      event: (name, data, id) => {
        if (id) lastEventId = id;
        const body = JSON.parse(data) as { data: any; meta?: { room: string; id: string } };
        if (name === 'herald:subscribed') {
          const ack = body.data as { ok: boolean; room: string; offset?: string; recovered?: boolean };
          if (!ack.ok) r.gaps.push({ room: ack.room, at: Date.now(), what: `stream refused the room: ${JSON.stringify(ack)}` });
          if (ack.recovered === false) r.gaps.push({ room: ack.room, at: Date.now(), what: 'stream resumed with recovered: false' });
          if (ack.offset && !r.start.has(ack.room)) r.start.set(ack.room, ack.offset);
          subscribed.add(ack.room);
          if (subscribed.size === rooms.length) opened();
        } else if (name === 'herald:reset') r.gaps.push({ room: body.data.room, at: Date.now(), what: `herald:reset ${body.data.code}` });
        else if (body.meta) r.got.get(body.meta.room)?.push({ id: body.meta.id, data: name === 's' ? body.data : undefined });
      },
      closed: () => {
        if (stopped || current !== client) return;
        // What EventSource does: come back after a moment with the last id it saw.
        timer = setTimeout(open, 100 + Math.random() * 200);
      },
    }, { headers: { ...auth, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) } });
    current = client;
  };
  made.push(r);
  open();
  await first;
  return r;
}

describe('soak: history, recovery, slow readers, control and failures together', { timeout: (SECONDS + 180) * 1000 }, () => {
  let redis: RedisProcess;
  let probe: Redis;
  const gateways: Gateway[] = [];
  let relay: DroppingRelay;
  /** The slow readers' own balancer, which stops reading what the replicas send while `hold`s last. */
  let slowRelay: DroppingRelay;

  const env = (transport: 'uws' | 'node') => ({
    TRANSPORT: transport,
    REDIS_URL: redis.url,
    PUBLISH_KEYS: KEY,
    CONTROL_KEYS: CONTROL,
    JWT_SECRET: SECRET,
    HISTORY_ROOMS: 'd:* delta, h:*',
    CONFLATE_ROOMS: 'd:*',
    HISTORY_SIZE: '2000',
    DRAIN_SECONDS: '2',
    PUBLISH_MAX_BYTES: '1048576',
    CLIENT_RATE: '1000',
    CLIENT_BURST: '1000',
    CONNECT_RATE_PER_IP: '1000',
    CONNECT_BURST_PER_IP: '1000',
  });
  const backends = (list: Gateway[]) => list.map((g) => ({ host: '127.0.0.1', port: g.port }));

  before(async () => {
    redis = await startRedis();
    probe = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await probe.connect();
    for (const t of ['uws', 'node', 'uws'] as const) gateways.push(await startGateway({ env: env(t) }));
    relay = await DroppingRelay.start(backends(gateways));
    slowRelay = await DroppingRelay.start(backends(gateways));
  });
  after(async () => {
    for (const o of made) o.stop();
    await relay?.close();
    await slowRelay?.close();
    for (const g of gateways) await g.stop();
    probe?.disconnect();
    await redis?.stop();
  });

  it(`keeps every promise for ${SECONDS} s`, async () => {
    const subs: Subscriber[] = [];
    for (let i = 0; i < CLIENTS; i++) subs.push(await subscriber(KINDS[i % KINDS.length] === 'slow' ? slowRelay.url : relay.url, i));
    const deltaSubs: DeltaSubscriber[] = [];
    for (let i = 0; i < DELTA_CLIENTS; i++) {
      const slow = i === DELTA_CLIENTS - 1;
      deltaSubs.push(await deltaSubscriber(slow ? slowRelay.url : relay.url, i, slow));
    }
    const readers: SseReader[] = [];
    for (const [k, [rooms, slow]] of SSE_READERS.entries()) readers.push(await sseReader(slow ? slowRelay.url : relay.url, k, rooms, slow));
    const resetAll = () => void (relay.dropAll() + slowRelay.dropAll());
    const retarget = (list: Gateway[]) => {
      relay.retarget(backends(list));
      slowRelay.retarget(backends(list));
    };

    const live = new Set(gateways);
    const acked = new Map<string, { id: string; at: number }[]>([...HISTORY, FIREHOSE, SCORE].map((r) => [r, []]));
    /** The published payload of every acknowledged score, by id. */
    const scores = new Map<string, unknown>();
    let published = 0;
    let refused = 0;
    let maxHeap = 0;
    let maxRedis = 0;
    /** Per replica, the slow readers it closed (herald_slow_consumer_disconnects_total, from /readyz). */
    const slowClosed = new Map<Gateway, number>();
    /** Every promise broken, collected so that one run reports them all. */
    const problems: string[] = [];
    const startedAt = Date.now();
    const until = startedAt + SECONDS * 1000;
    const at = (share: number) => startedAt + share * SECONDS * 1000;

    const publisher = (async () => {
      for (let n = 0; Date.now() < until; n++) {
        const room = Math.random() < 0.7 ? rand(HISTORY) : rand(PLAIN);
        const target = rand([...live]);
        const r = await post(target.url, '/v1/publish', KEY, { room, event: 'm', data: { n, pad: 'x'.repeat(size()) } }).catch(() => ({ status: 0, body: undefined }));
        if (r.status === 200) {
          published++;
          if (room.startsWith('h:')) acked.get(room)!.push({ id: r.body.ids[room], at: Date.now() });
        } else refused++;
        const due = startedAt + ((n + 1) * 1000) / RATE;
        if (due > Date.now()) await delay(due - Date.now());
      }
    })();

    const firehose = (async () => {
      for (let n = 0; Date.now() < until; n++) {
        const r = await post(rand([...live]).url, '/v1/publish', KEY, { room: FIREHOSE, event: 'm', data: { n, pad: 'f'.repeat(30_000) } }).catch(() => ({ status: 0, body: undefined }));
        if (r.status === 200) {
          published++;
          acked.get(FIREHOSE)!.push({ id: r.body.ids[FIREHOSE], at: Date.now() });
        } else refused++;
        const due = startedAt + ((n + 1) * 1000) / FIREHOSE_RATE;
        if (due > Date.now()) await delay(due - Date.now());
      }
    })();

    const scorer = (async () => {
      for (let n = 0; Date.now() < until; n++) {
        const data = score(n);
        const r = await post(rand([...live]).url, '/v1/publish', KEY, { room: SCORE, event: 's', data }).catch(() => ({ status: 0, body: undefined }));
        if (r.status === 200) {
          published++;
          acked.get(SCORE)!.push({ id: r.body.ids[SCORE], at: Date.now() });
          scores.set(r.body.ids[SCORE], data);
        } else refused++;
        const due = startedAt + ((n + 1) * 1000) / SCORE_RATE;
        if (due > Date.now()) await delay(due - Date.now());
      }
    })();

    const sampler = (async () => {
      while (Date.now() < until) {
        for (const g of live) {
          const r = await fetch(`${g.url}/readyz`).then((x) => x.json() as Promise<{ heapUsedBytes?: number; slowConsumerDisconnects?: number }>).catch(() => undefined);
          maxHeap = Math.max(maxHeap, r?.heapUsedBytes ?? 0);
          slowClosed.set(g, Math.max(slowClosed.get(g) ?? 0, r?.slowConsumerDisconnects ?? 0));
        }
        const info = await probe.info('memory');
        maxRedis = Math.max(maxRedis, Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0));
        await delay(1000);
      }
    })();

    // The chaos, on a timeline relative to the run.
    const kicked = subs.find((s) => s.kind === 'zero')!;
    const kickedRoom = kicked.rooms[0]!;
    let unsubscribedAt = Number.POSITIVE_INFINITY;
    /** The last message of `kickedRoom` the kicked user had when its connection went down. */
    let kickedLast: string | undefined;
    const chaos = (async () => {
      const steps: [number, string, () => Promise<void>][] = [
        [0.1, 'reset every client connection', async () => resetAll()],
        [0.15, 'slow readers stop reading for 12 s', () => hold(slowRelay, 12_000)],
        [0.3, 'CLIENT KILL TYPE pubsub', async () => void (await probe.client('KILL', 'TYPE', 'pubsub'))],
        [0.4, 'a backend unsubscribes a user while its connection is down', async () => {
          kicked.socket.io.reconnectionDelay(4000);
          kicked.socket.io.reconnectionDelayMax(4000);
          kicked.socket.io.engine.close();
          // Down on the server too (its session saved), not only on the client.
          await waitFor('the kicked user disconnected', async () => {
            const r = await fetch(`${rand([...live]).url}/v1/users/${kicked.user}`, { headers: { authorization: `Bearer ${CONTROL}` } });
            return !kicked.socket.connected && ((await r.json()) as { connections: unknown[] }).connections.length === 0;
          });
          kickedLast = kicked.got.get(kickedRoom)!.at(-1)?.id;
          const r = await post(rand([...live]).url, '/v1/unsubscribe', CONTROL, { user: kicked.user, room: kickedRoom });
          unsubscribedAt = Date.now();
          if (r.status !== 200 || r.body.unsubscribed !== 1) problems.push(`unsubscribe of a user whose session waits: ${r.status} ${JSON.stringify(r.body)} (the waiting session must count)`);
        }],
        [0.5, 'drain one replica; a new one takes its place', async () => {
          const going = gateways[1]!;
          live.delete(going);
          retarget([...live]);
          going.signal('SIGTERM');
          const code = await going.exited();
          if (code !== 0) problems.push(`the drain exited ${code}`);
          const fresh = await startGateway({ env: env('node') });
          gateways.push(fresh);
          live.add(fresh);
          retarget([...live]);
        }],
        [0.6, 'reset every client connection', async () => resetAll()],
        [0.65, 'slow readers stop reading for 12 s', () => hold(slowRelay, 12_000)],
        [0.8, 'CLIENT KILL TYPE pubsub', async () => void (await probe.client('KILL', 'TYPE', 'pubsub'))],
        [0.9, 'reset every client connection', async () => resetAll()],
      ];
      for (const [share, what, act] of steps) {
        if (at(share) > Date.now()) await delay(at(share) - Date.now());
        console.log(`# soak t+${Math.round((Date.now() - startedAt) / 1000)} s: ${what}`);
        await act();
      }
    })();

    await Promise.all([publisher, firehose, scorer, sampler, chaos]);
    const owed = (s: Subscriber, room: string) => {
      const from = s.start.get(room);
      const list = acked.get(room)!.filter((a) => from === undefined || compareIds(a.id, from) > 0);
      // Unsubscribed while down: owed what it had before, nothing after the backend's answer.
      if (s === kicked && room === kickedRoom) return list.filter((a) => kickedLast !== undefined && compareIds(a.id, kickedLast) <= 0);
      return list;
    };
    /** The delta subscribers and event-stream readers: who, what they got, and whether a room may skip (conflated for a slow reader). */
    const others = [
      ...deltaSubs.map((d) => ({ who: `${d.user} (client module${d.slow ? ', slow' : ''})`, got: d.got, start: d.start, gaps: d.gaps, skips: (room: string) => d.slow && room === SCORE })),
      ...readers.map((r) => ({ who: `event stream ${r.n}${r.slow ? ' (slow)' : ''}`, got: r.got, start: r.start, gaps: r.gaps, skips: () => false })),
    ];
    const owedTo = (o: (typeof others)[number], room: string) => {
      const from = o.start.get(room);
      return acked.get(room)!.filter((a) => from === undefined || compareIds(a.id, from) > 0);
    };
    const caughtUp = (o: (typeof others)[number]) =>
      [...o.got].every(([room, got]) => {
        const owedList = owedTo(o, room);
        if (o.skips(room)) return owedList.length === 0 || got.at(-1)?.id === owedList.at(-1)!.id;
        const have = new Set(got.map((x) => x.id));
        return owedList.every((a) => have.has(a.id));
      });
    await waitFor(
      'every subscriber caught up with every acknowledged history message',
      () =>
        subs.every((s) => s.rooms.filter((r) => r.startsWith('h:')).every((room) => {
          const got = new Set(s.got.get(room)!.map((x) => x.id));
          return owed(s, room).every((a) => got.has(a.id));
        })) && others.every(caughtUp),
      30_000,
    ).catch(() => undefined); // the assertions below say what is missing

    for (const o of others) {
      for (const [room, got] of o.got) {
        const ids = got.map((x) => x.id);
        if (new Set(ids).size !== ids.length) problems.push(`${o.who} ${room}: ${ids.length - new Set(ids).size} duplicates`);
        for (let k = 1; k < ids.length; k++) {
          if (compareIds(ids[k - 1]!, ids[k]!) >= 0) {
            problems.push(`${o.who} ${room}: out of order at ${k}: ${ids[k - 1]} then ${ids[k]}`);
            break;
          }
        }
        if (room === SCORE) {
          // A score the publisher's call did not see acknowledged (cut by the drain) has nothing to compare with.
          const wrong = got.filter((x) => scores.has(x.id) && !isDeepStrictEqual(x.data, scores.get(x.id)));
          if (wrong.length > 0) problems.push(`${o.who} ${room}: ${wrong.length} payloads differ from the published ones (first ${wrong[0]!.id}: ${JSON.stringify(wrong[0]!.data)})`);
        }
        const owedList = owedTo(o, room);
        if (o.skips(room)) {
          if (owedList.length > 0 && got.at(-1)?.id !== owedList.at(-1)!.id) problems.push(`${o.who} ${room}: ends with ${got.at(-1)?.id}, not the newest score ${owedList.at(-1)!.id}`);
          continue;
        }
        const have = new Set(ids);
        const missing = owedList.filter((a) => !have.has(a.id));
        if (missing.length > 0) problems.push(`${o.who} ${room}: ${missing.length} of ${owedList.length} acknowledged messages missing (first ${missing[0]!.id})`);
      }
      for (const g of o.gaps) problems.push(`${o.who} ${g.room}: explicit gap: ${g.what}`);
    }
    for (const d of deltaSubs) if (d.herald.stats.mismatches > 0) problems.push(`${d.user}: ${d.herald.stats.mismatches} deltas on a base it did not hold`);
    const deltasApplied = deltaSubs.reduce((n, d) => n + d.herald.stats.deltas, 0);
    const streams = readers.reduce((n, r) => n + r.streams, 0);

    for (const s of subs) {
      for (const room of s.rooms) {
        const got = s.got.get(room)!;
        const ids = got.map((x) => x.id);
        if (new Set(ids).size !== ids.length) problems.push(`${s.user} (${s.kind}) ${room}: ${ids.length - new Set(ids).size} duplicates`);
        if (!room.startsWith('h:')) continue;
        for (let k = 1; k < ids.length; k++) {
          if (compareIds(ids[k - 1]!, ids[k]!) >= 0) {
            problems.push(`${s.user} (${s.kind}) ${room}: out of order at ${k}: ${ids[k - 1]} then ${ids[k]}`);
            break;
          }
        }
        const have = new Set(ids);
        const missing = owed(s, room).filter((a) => !have.has(a.id));
        if (missing.length > 0) problems.push(`${s.user} (${s.kind}) ${room}: ${missing.length} of ${owed(s, room).length} acknowledged messages missing (first ${missing[0]!.id})`);
        if (s === kicked && room === kickedRoom) {
          const late = got.filter((x) => acked.get(room)!.some((a) => a.id === x.id && a.at > unsubscribedAt));
          if (late.length > 0) problems.push(`${s.user} got ${late.length} messages of ${room} published after the backend unsubscribed it`);
        }
      }
      for (const g of s.gaps) problems.push(`${s.user} (${s.kind}) ${g.room}: explicit gap: ${g.what}`);
    }
    const reconnects = subs.reduce((n, s) => n + s.connects - 1, 0);
    const slowTotal = [...slowClosed.values()].reduce((a, b) => a + b, 0);
    console.log(
      `# soak: ${SECONDS} s, ${published} published (${refused} refused), ${reconnects} reconnects, ` +
        `${subs.reduce((n, s) => n + s.notRecovered, 0)} not recovered (sessions with a plain room), ${slowTotal} slow readers closed, max heap ${(maxHeap / 1048576).toFixed(1)} MB, max Redis ${(maxRedis / 1048576).toFixed(1)} MB`,
    );
    let conflated = 0;
    for (const g of live) {
      const text = await (await fetch(`${g.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text().catch(() => '');
      conflated += Number(/^herald_conflated_messages_total (\d+)/m.exec(text)?.[1] ?? 0);
    }
    console.log(`# soak: ${acked.get(SCORE)!.length} scores, ${deltasApplied} deltas applied by the client module, ${conflated} scores conflated (replicas still up), ${streams} event streams opened by ${readers.length} readers`);
    for (const s of subs) s.socket.close();
    for (const d of deltaSubs) d.socket.close();
    for (const r of readers) r.stop();
    assert.deepEqual(problems, [], 'every promise kept');
    assert.ok(deltasApplied > 0, 'the client module applied deltas');
    assert.ok(streams > readers.length, `event streams were cut and resumed (${streams} opened)`);
    assert.ok(reconnects >= CLIENTS * 3, `clients reconnected (${reconnects})`);
    assert.ok(slowTotal > 0, 'the slow readers were closed at the bound at least once (the slow path was exercised)');
    const notRecovered = subs.filter((s) => s.kind !== 'since+plain' && s.notRecovered > 0).map((s) => `${s.user} (${s.kind}): ${s.notRecovered}`);
    assert.deepEqual(notRecovered, [], 'sessions with history rooms only are recovered on every reconnect');
    assert.ok(maxHeap > 0 && maxHeap < HEAP_BOUND, `replica heap stayed under ${HEAP_BOUND / 1048576} MB (max ${maxHeap})`);
    assert.ok(maxRedis > 0 && maxRedis < REDIS_BOUND, `Redis memory stayed under ${REDIS_BOUND / 1048576} MB (max ${maxRedis})`);
  });
});

/** The slow readers' relay stops reading what the replicas send for `ms` (a phone in a tunnel), then reads again. */
async function hold(slow: DroppingRelay, ms: number): Promise<void> {
  slow.hold();
  await delay(ms);
  slow.release();
}
