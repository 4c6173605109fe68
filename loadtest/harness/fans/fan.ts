/**
 * One fan of a live-score page, as socket.io-client would drive it, over the harness's raw
 * WebSocket client: subscribed to the all-scores room and its match room (both history rooms), in
 * its user room by its token's `sub`. When its connection drops it reconnects after
 * socket.io-client's randomized backoff, to any replica, offering its session for Socket.IO's
 * connection state recovery (`{pid, offset}`); when that session does not come back it subscribes
 * again with `since` per room. Frames are read in place: published events are recognised by
 * their first bytes and their few fields found with `indexOf`, without JSON parsing.
 */
import { connectFrame, eventFrame, PONG, socketUrl } from '../../lib/socketio.js';
import { WsClient } from '../wsclient.js';
import { ALL_ROOM, matchRoom } from './protocol.js';
import { Histogram, refusalKind } from './stats.js';

/**
 * socket.io-client's reconnection defaults (reconnectionDelay, reconnectionDelayMax,
 * randomizationFactor) and its connect `timeout`, here up to every subscribe answered.
 */
const BACKOFF = { min: 1000, max: 5000, factor: 2, jitter: 0.5 };
const CONNECT_TIMEOUT_MS = Number(process.env.FANS_CONNECT_TIMEOUT_MS ?? 20_000);

/** socket.io-client's Backoff.duration(), attempt `n` from 0. */
export function backoffMs(n: number, rand = Math.random()): number {
  let ms = BACKOFF.min * BACKOFF.factor ** n;
  const deviation = Math.floor(rand * BACKOFF.jitter * ms);
  ms = (Math.floor(rand * 10) & 1) === 0 ? ms - deviation : ms + deviation;
  return Math.min(ms, BACKOFF.max) | 0;
}

/** What one measurement window counts, in one client process. */
export class PhaseStats {
  readonly latency = new Histogram();
  readonly healthyLatency = new Histogram();
  /** All-scores seq → [latest live arrival at a healthy fan, how many healthy fans got it live]. */
  readonly broadcasts = new Map<number, [number, number]>();
  delivered = 0;
  replayed = 0;
  drops = 0;
  readonly refusals: Record<string, number> = {};
  reconnects = 0;
  /** Connection attempts the balancer sent to another replica after a refused TCP connection. */
  redispatched = 0;
  sessionsRecovered = 0;
  sinceRecovered = 0;
  sinceNotRecovered = 0;
  resets = 0;
  /** Fans live again after a drop, per 100 ms of wall-clock time (`Math.floor(ms / 100)` → count). */
  readonly backPer100ms: Record<string, number> = {};
  constructor(readonly id: number) {}
}

/** What the fans of one process share. */
export interface FanWorld {
  phase: PhaseStats;
  readonly balancer: Balancer;
  readonly localAddresses: string[];
  readonly forwardedFor: boolean;
  /** A fan became live (`first`: for the first time). */
  live(fan: Fan, first: boolean): void;
}

/**
 * The balancer in front of the replicas, as the shipped HAProxy (deploy/compose/haproxy.cfg) is
 * set up: `balance leastconn` over the replicas its health check sees up, and a connection a
 * replica refuses, or a handshake it answers 503, is dispatched to another one (`retries 2`,
 * `option redispatch`, `retry-on conn-failure 503`). Each client
 * process balances its own fans, so the connections of all of them are spread as leastconn
 * would. The coordinator says which replicas are up (`setUp`), as the health check would learn it.
 */
export class Balancer {
  private up: string[] = [];
  private readonly held = new Map<string, number>();

  setUp(urls: string[]): void {
    this.up = urls;
  }

  /** The up replica with the fewest of this process's fans, other than `not`. */
  pick(not?: string): string {
    let best: string | undefined;
    for (const u of this.up) {
      if (u === not && this.up.length > 1) continue;
      if (best === undefined || (this.held.get(u) ?? 0) < (this.held.get(best) ?? 0)) best = u;
    }
    if (best === undefined) throw new Error('no replica is up');
    this.held.set(best, (this.held.get(best) ?? 0) + 1);
    return best;
  }

  release(url: string): void {
    this.held.set(url, (this.held.get(url) ?? 1) - 1);
  }
}

/** Redispatches of one connection attempt to another replica (HAProxy `retries`). */
const REDISPATCHES = 2;
/** What HAProxy tries on another replica: a refused TCP connection, and a handshake answered 503 (`retry-on conn-failure 503`). */
const REDISPATCHED = /ECONNREFUSED|^handshake: HTTP\/1\.1 503/;

const b = (s: string) => Buffer.from(s);
const SEQ = b('"s":');
const SENT = b('"t":');
const ID = b('"id":"');
const Q = 0x22;

/** Digits at `at` as a number (the publisher's seq and timestamps are plain integers). */
function intAt(buf: Buffer, at: number): number {
  let n = 0;
  for (let i = at; ; i++) {
    const c = buf[i]!;
    if (c < 0x30 || c > 0x39) return n;
    n = n * 10 + (c - 0x30);
  }
}

type State = 'idle' | 'connecting' | 'subscribing' | 'live' | 'waiting' | 'closed';

export class Fan {
  state: State = 'idle';
  private ws: WsClient | undefined;
  private pid: string | undefined;
  private offset: string | undefined;
  private lastAll: string | undefined;
  private lastMatch: string | undefined;
  private pendingAcks = 0;
  /** Rooms (1 all-scores, 2 match) whose subscribe this fan has not seen answered yet. */
  private unanswered = 0;
  private attempts = 0;
  private timer: NodeJS.Timeout | undefined;
  private everLive = false;
  /** Phase ids in which this fan dropped. */
  readonly droppedIn: number[] = [];
  seenAll: Uint8Array = new Uint8Array(16);
  seenMatch: Uint8Array = new Uint8Array(4);
  uniqueAll = 0;
  uniqueMatch = 0;
  duplicates = 0;
  userReceived = 0;

  constructor(
    readonly n: number,
    readonly match: number,
    private readonly token: string,
    private readonly world: FanWorld,
  ) {}

  /** Whether this fan dropped in the current phase (its deliveries do not count as a healthy fan's). */
  private get droppedNow(): boolean {
    return this.droppedIn.at(-1) === this.world.phase.id;
  }

  connect(url = this.world.balancer.pick(), redispatched = 0): Promise<void> {
    return new Promise((settled) => {
      this.state = 'connecting';
      let answered = false;
      const done = () => {
        if (!answered) {
          answered = true;
          settled();
        }
      };
      const n = this.n;
      const headers = this.world.forwardedFor ? { 'X-Forwarded-For': `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}` } : undefined;
      let connected = false;
      /** Why this side ended the attempt, when it did (the client's own close reason says only "terminated"). */
      let ended: string | undefined;
      // Every end this side makes is a failed attempt (no CONNECT, refused, a subscribe refused), not a drop.
      const fail = (reason: string) => {
        ended = reason;
        connected = false;
        ws.terminate();
      };
      const ws: WsClient = new WsClient(socketUrl(url), {
        open: () => {},
        closed: (reason) => {
          clearTimeout(this.timer);
          this.world.balancer.release(url);
          done();
          if (this.ws !== ws || this.state === 'closed') return;
          this.ws = undefined;
          if (!connected && REDISPATCHED.test(reason) && redispatched < REDISPATCHES) {
            // What the balancer does for a replica that refuses the TCP connection or answers the
            // handshake 503: the client sees nothing.
            this.world.phase.redispatched++;
            void this.connect(this.world.balancer.pick(url), redispatched + 1);
            return;
          }
          if (connected) {
            this.world.phase.drops++;
            if (!this.droppedNow) this.droppedIn.push(this.world.phase.id);
          } else {
            const kind = refusalKind(ended ?? reason);
            this.world.phase.refusals[kind] = (this.world.phase.refusals[kind] ?? 0) + 1;
          }
          this.retry();
        },
        text: (buf, start, end) => {
          if (buf[start] === 0x34 && buf[start + 1] === 0x32 && buf[start + 4] !== 0x68) return this.onEvent(buf, start, end);
          const text = buf.toString('utf8', start, end);
          if (text === '2') ws.send(PONG);
          else if (text.startsWith('0')) ws.send(connectFrame({ token: this.token, ...(this.pid && this.offset ? { pid: this.pid, offset: this.offset } : {}) }));
          else if (text.startsWith('40')) {
            connected = true;
            done();
            this.onConnected(ws, JSON.parse(text.slice(2)) as { sid: string; pid?: string });
          } else if (text.startsWith('44')) {
            const code = (JSON.parse(text.slice(2)) as { data?: { code?: string } }).data?.code ?? 'unknown';
            fail(`connect_error:${code}`);
          } else if (text.startsWith('43')) this.onAck(text, fail);
          else if (text.startsWith('42')) this.onHeraldEvent(text);
        },
      }, { localAddress: this.world.localAddresses[n % this.world.localAddresses.length], headers });
      this.ws = ws;
      this.timer = setTimeout(() => fail('timeout'), CONNECT_TIMEOUT_MS);
    });
  }

  private retry(): void {
    this.state = 'waiting';
    this.timer = setTimeout(() => {
      this.world.phase.reconnects++;
      void this.connect();
    }, backoffMs(this.attempts++));
  }

  private onConnected(ws: WsClient, reply: { sid: string; pid?: string }): void {
    // As socket.io-client decides `socket.recovered`: the CONNECT answer carries the private
    // session id (`pid`) this fan offered. The socket id may be new: a session restored from a
    // drain's portable offset (herald found no stored session) keeps the pid under a fresh id.
    const recovered = this.pid !== undefined && reply.pid === this.pid;
    if (recovered) this.world.phase.sessionsRecovered++;
    else {
      this.pid = reply.pid;
      this.unanswered = 3;
    }
    // A recovered session keeps the rooms it had, but not a subscribe that was still unanswered
    // when the connection dropped (herald may never have run it): that one is sent again, as
    // socket.io-client's own `retries` or an app waiting on the ack would.
    if (this.unanswered === 0) return this.goLive();
    this.state = 'subscribing';
    this.pendingAcks = 0;
    const since = (room: string, last: string | undefined) => (last === undefined ? room : { room, since: last });
    if (this.unanswered & 1) {
      this.pendingAcks++;
      ws.send(eventFrame('subscribe', [since(ALL_ROOM, this.lastAll)], 1));
    }
    if (this.unanswered & 2) {
      this.pendingAcks++;
      ws.send(eventFrame('subscribe', [since(matchRoom(this.match), this.lastMatch)], 2));
    }
  }

  private onAck(text: string, fail: (reason: string) => void): void {
    const id = Number(text.slice(2, text.indexOf('[')));
    const ack = (JSON.parse(text.slice(text.indexOf('['))) as [{ ok?: boolean; offset?: string; recovered?: boolean; error?: { code?: string } }])[0];
    if (!ack?.ok) return fail(`connect_error:subscribe_${ack?.error?.code ?? 'failed'}`);
    if (ack.offset !== undefined) {
      if (id === 1) this.lastAll = ack.offset;
      else this.lastMatch = ack.offset;
    }
    this.unanswered &= ~id;
    if (ack.recovered === true) this.world.phase.sinceRecovered++;
    else if (ack.recovered === false) this.world.phase.sinceNotRecovered++;
    if (--this.pendingAcks === 0) this.goLive();
  }

  private goLive(): void {
    clearTimeout(this.timer);
    this.state = 'live';
    this.attempts = 0;
    const first = !this.everLive;
    this.everLive = true;
    this.world.live(this, first);
  }

  /** herald's own events: the hello (its offset counts for recovery) and resets. */
  private onHeraldEvent(text: string): void {
    const args = JSON.parse(text.slice(2)) as unknown[];
    const last = args.at(-1);
    if (typeof last === 'string') this.offset = last;
    if (args[0] === 'herald:reset') this.world.phase.resets++;
  }

  /** A published event: `42["<a|m|u>",{"s":seq,"t":sent},{"room",...,"id":"<ms>-<n>",...},"<offset>"]`. */
  private onEvent(buf: Buffer, start: number, end: number): void {
    const kind = buf[start + 4];
    const s = buf.indexOf(SEQ, start);
    const t = buf.indexOf(SENT, s);
    if (s < 0 || t < 0 || s >= end) return;
    const seq = intAt(buf, s + SEQ.length);
    const sent = intAt(buf, t + SENT.length);
    const i = buf.indexOf(ID, t);
    const id = i > 0 && i < end ? buf.toString('latin1', i + ID.length, buf.indexOf(Q, i + ID.length)) : undefined;
    if (buf[end - 1] === 0x5d && buf[end - 2] === Q) this.offset = buf.toString('latin1', buf.lastIndexOf(Q, end - 3) + 1, end - 2);
    const phase = this.world.phase;
    phase.delivered++;
    if (this.state === 'live') {
      const now = Date.now();
      phase.latency.add(now - sent);
      if (!this.droppedNow) {
        phase.healthyLatency.add(now - sent);
        if (kind === 0x61) {
          const b = phase.broadcasts.get(seq);
          if (!b) phase.broadcasts.set(seq, [now, 1]);
          else {
            if (now > b[0]) b[0] = now;
            b[1]++;
          }
        }
      }
    } else phase.replayed++;
    if (kind === 0x61) {
      this.lastAll = id ?? this.lastAll;
      this.seenAll = this.mark(this.seenAll, seq, true);
    } else if (kind === 0x6d) {
      this.lastMatch = id ?? this.lastMatch;
      this.seenMatch = this.mark(this.seenMatch, seq, false);
    } else this.userReceived++;
  }

  /** Sets bit `seq` of `seen` (grown as needed), counting a first arrival or a duplicate. */
  private mark(seen: Uint8Array, seq: number, all: boolean): Uint8Array {
    const byte = seq >> 3;
    if (byte >= seen.length) {
      const grown = new Uint8Array(Math.max(byte + 1, seen.length * 2));
      grown.set(seen);
      seen = grown;
    }
    const bit = 1 << (seq & 7);
    if (seen[byte]! & bit) this.duplicates++;
    else {
      seen[byte]! |= bit;
      if (all) this.uniqueAll++;
      else this.uniqueMatch++;
    }
    return seen;
  }

  close(): void {
    this.state = 'closed';
    clearTimeout(this.timer);
    this.ws?.terminate();
    this.ws = undefined;
  }
}
