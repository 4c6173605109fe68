/**
 * `jitter`: what a plain Socket.IO client keeps of a stream while its connection keeps dropping,
 * as AnyCable's published benchmark measured it (connections dropped every ~2 s while a publisher
 * runs). The clients are stock socket.io-client instances that reconnect by themselves and
 * subscribe on `connect` unless `socket.recovered` (what a user of connection state recovery
 * writes); a TCP relay in front of the servers resets every connection through it every ~2 s.
 * Counts, per client, distinct sequence numbers received and duplicates; delivery is
 * unique deliveries over published × clients.
 *
 * The clients run in this process (the coordinator, pinned to the client CPU by the bench): a few
 * hundred clients at tens of messages a second cost little. Loopback only, bounded in count and time.
 */
import { createServer, connect, type Server, type Socket as TcpSocket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { io, type Socket } from 'socket.io-client';
import { publishAtRate, type PublishTarget } from './publisher.js';

/**
 * A TCP relay on 127.0.0.1 that hands each new connection to the next server in turn (as a
 * least-connections balancer would, roughly) and can reset every connection through it at once.
 */
export class DroppingRelay {
  private readonly pairs = new Set<{ client: TcpSocket; upstream: TcpSocket }>();
  private next = 0;
  /** Connections reset so far. */
  dropped = 0;

  private backends: { host: string; port: number }[] = [];
  private holding = false;

  private constructor(private readonly server: Server) {}

  static async start(backends: { host: string; port: number }[]): Promise<DroppingRelay> {
    let relay!: DroppingRelay;
    const server = createServer((client) => {
      const b = relay.backends[relay.next++ % relay.backends.length]!;
      const upstream = connect({ host: b.host, port: b.port });
      const pair = { client, upstream };
      relay.pairs.add(pair);
      const end = () => {
        relay.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      client.pipe(upstream);
      if (relay.holding) upstream.pause();
      else upstream.pipe(client);
    });
    relay = new DroppingRelay(server);
    relay.backends = backends;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return relay;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** New connections go to these from now on (a balancer that moved on); open ones stay where they are. */
  retarget(backends: { host: string; port: number }[]): void {
    this.backends = backends;
  }

  /**
   * Stops reading what the servers send, on open connections and new ones, until `release`: a
   * client that stops reading (a phone in a tunnel) while its connection stays up. The kernel
   * buffers fill, then the servers' own queues for these connections.
   */
  hold(): void {
    this.holding = true;
    for (const { client, upstream } of this.pairs) {
      upstream.unpipe(client);
      upstream.pause();
    }
  }

  /** Forwards what the servers send again, from where `hold` stopped. */
  release(): void {
    this.holding = false;
    for (const { client, upstream } of this.pairs) upstream.pipe(client);
  }

  /** Resets every connection now (an RST to the client, the server's side closed), as a network cut. */
  dropAll(): number {
    const n = this.pairs.size;
    for (const { client, upstream } of [...this.pairs]) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
    this.dropped += n;
    return n;
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export interface JitterOptions {
  clients: number;
  /** Publishes per second to the one room, for `seconds`. */
  rate: number;
  seconds: number;
  /** Every connection through the relay is reset about this often (±20 %). */
  dropEveryMs: number;
  room: string;
  /**
   * How a client joins the room: `subscribe` emits herald's `subscribe` event on connect;
   * `auth` passes `{ room }` in the handshake and the server joins it (bench/stock-server.cjs).
   */
  join: 'subscribe' | 'auth';
}

interface ClientState {
  socket: Socket;
  seen: Set<number>;
  duplicates: number;
  connects: number;
  recovered: number;
}

/** Runs the scenario against `servers` (base URLs) through a dropping relay; publishes to `publish`. */
export async function jitter(servers: string[], publish: PublishTarget, o: JitterOptions) {
  const relay = await DroppingRelay.start(servers.map((u) => ({ host: new URL(u).hostname, port: Number(new URL(u).port) })));
  const clients: ClientState[] = [];
  try {
    for (let i = 0; i < o.clients; i++) {
      const socket = io(relay.url, {
        transports: ['websocket'],
        forceNew: true,
        ...(o.join === 'auth' ? { auth: { room: o.room } } : {}),
      });
      const c: ClientState = { socket, seen: new Set(), duplicates: 0, connects: 0, recovered: 0 };
      socket.on('connect', () => {
        c.connects++;
        if (socket.recovered) c.recovered++;
        else if (o.join === 'subscribe') socket.emit('subscribe', { room: o.room });
      });
      socket.on('load', (data: { seq?: number }) => {
        if (typeof data?.seq !== 'number') return;
        if (c.seen.has(data.seq)) c.duplicates++;
        else c.seen.add(data.seq);
      });
      clients.push(c);
    }
    const connectedBy = Date.now() + 15_000;
    while (clients.some((c) => !c.socket.connected) && Date.now() < connectedBy) await delay(50);
    const initiallyConnected = clients.filter((c) => c.socket.connected).length;
    await delay(500); // the subscribes sent on connect have been answered

    let publishing = true;
    const dropper = (async () => {
      while (publishing) {
        await delay(o.dropEveryMs * (0.8 + Math.random() * 0.4));
        if (publishing) relay.dropAll();
      }
    })();
    const pub = await publishAtRate(publish, [o.room], o.rate, o.seconds, { inFlight: 16 });
    publishing = false;
    await dropper;

    // Let the clients come back and receive what they will (replays included), bounded.
    const published = pub.accepted[o.room] ?? 0;
    const settleBy = Date.now() + 15_000;
    let last = -1;
    for (;;) {
      const unique = clients.reduce((a, c) => a + c.seen.size, 0);
      const connected = clients.every((c) => c.socket.connected);
      if ((connected && unique === last) || unique >= published * clients.length || Date.now() > settleBy) break;
      last = connected ? unique : -1;
      await delay(1000);
    }
    const unique = clients.reduce((a, c) => a + Math.min(c.seen.size, published), 0);
    const reconnects = clients.reduce((a, c) => a + Math.max(0, c.connects - 1), 0);
    return {
      scenario: 'jitter',
      clients: o.clients,
      initiallyConnected,
      rate: o.rate,
      seconds: o.seconds,
      dropEveryMs: o.dropEveryMs,
      published,
      publishFailures: pub.failed,
      connectionsReset: relay.dropped,
      reconnects,
      recovered: clients.reduce((a, c) => a + c.recovered, 0),
      expected: published * o.clients,
      unique,
      duplicates: clients.reduce((a, c) => a + c.duplicates, 0),
      deliveredShare: published === 0 ? 0 : unique / (published * o.clients),
      connectedAtEnd: clients.filter((c) => c.socket.connected).length,
    };
  } finally {
    for (const c of clients) c.socket.disconnect();
    await relay.close();
  }
}
