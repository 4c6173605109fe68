import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { io as connect, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import { publish } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startHaproxy, type Haproxy } from './helpers/haproxy.js';
import { freePort } from './helpers/ports.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { startRelay, type Relay } from './helpers/relay.js';
import { needs } from './helpers/tools.js';
import { waitFor } from './helpers/wait.js';

const GUIDE = new URL('../docs/guides/load-balancer.md', import.meta.url);
const OPTION = ', withCredentials: true';
const KEY = 'node-client-haproxy-key-0123456789';
const ROOM = 'rec:node';
const MESSAGES = 160;

/** The guide's zero-code client for Node: its `js` block that sets the option, without its import line. */
function guideSnippet(): string {
  const blocks = [...readFileSync(GUIDE, 'utf8').matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const block = blocks.find((b) => b.includes(OPTION));
  assert.ok(block, `docs/guides/load-balancer.md has a js block with "${OPTION.slice(2)}"`);
  return block
    .split('\n')
    .filter((l) => !l.startsWith('import '))
    .join('\n');
}

/** One application running the snippet: what it rendered and reloaded, and what its socket went through. */
interface App {
  socket: Socket;
  scores: number[];
  reloads: number;
  connects: number;
  recovered: boolean[];
  unknownSession: number;
  /** The replica of every connect, from `herald:hello`. */
  replicas: string[];
  subscribes: Promise<unknown>[];
}

/**
 * Runs `code` as an application would, with its free names (`io`, `url`, `token`, `room`,
 * `render`, `reloadStateFromBackend`) supplied. `io` adds only what a test needs on top of the
 * snippet's options: a connection of its own per app (`forceNew`), a short back-off, and `extra`.
 * Its `subscribe` goes out as written; the test asks for an ack to know when it was joined.
 */
function runApp(code: string, url: string, extra: Partial<ManagerOptions & SocketOptions> = {}): App {
  const app: App = { socket: undefined as unknown as Socket, scores: [], reloads: 0, connects: 0, recovered: [], unknownSession: 0, replicas: [], subscribes: [] };
  const io = (u: string, opts: Partial<ManagerOptions & SocketOptions>) => {
    const socket = connect(u, { ...opts, forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 300, ...extra });
    const emit = socket.emit.bind(socket);
    socket.emit = ((event: string, ...args: unknown[]) => {
      if (event !== 'subscribe') return emit(event, ...args);
      // Settles with the ack, or with the error of a connection that dropped before it came.
      app.subscribes.push(
        new Promise((resolve) => {
          socket.timeout(5000);
          emit(event, ...args, (err: Error | null, ack: unknown) => resolve(err ?? ack));
        }),
      );
      return socket;
    }) as Socket['emit'];
    return socket;
  };
  const run = new Function('io', 'url', 'token', 'room', 'render', 'reloadStateFromBackend', `${code}\nreturn socket;`);
  app.socket = run(io, url, undefined, ROOM, (data: number) => app.scores.push(data), () => app.reloads++) as Socket;
  app.socket.on('herald:hello', (hello: { replica: string }) => app.replicas.push(hello.replica));
  app.socket.on('connect', () => {
    if (app.connects++ > 0) app.recovered.push(app.socket.recovered);
  });
  // socket.io-client hands the failed request's XMLHttpRequest over as the error's context.
  const sawUnknown = (err: unknown) => {
    const text = (err as { context?: { responseText?: unknown } } | undefined)?.context?.responseText;
    if (typeof text === 'string' && text.includes('Session ID unknown')) app.unknownSession++;
  };
  app.socket.on('connect_error', sawUnknown);
  app.socket.on('disconnect', (_reason, details) => sawUnknown(details));
  return app;
}

/**
 * Node's socket.io-client behind the shipped HAProxy config, in front of two replicas + Redis,
 * with docs/guides/load-balancer.md's client. Without a cookie jar a long-polling client's requests
 * are balanced one by one onto replicas that do not know its session; with `withCredentials: true`
 * it keeps HAProxy's sticky cookie, and recovers across connection resets and a drain.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`Node clients behind HAProxy, as the load-balancer guide writes them (${transport})`, { skip: needs('haproxy') }, () => {
    let redis: RedisProcess;
    let gateways: Gateway[];
    let lb: Haproxy;
    let relay: Relay;
    const send = async (i: number, via: Gateway) => {
      const r = await publish(via.url, { room: ROOM, event: 'score', data: i }, KEY);
      assert.equal(r.status, 200, JSON.stringify(r.body));
    };

    before(async () => {
      redis = await startRedis();
      gateways = [];
      for (let i = 0; i < 2; i++) {
        const env = { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'rec:*', PORT: String(await freePort()), TRANSPORT: transport };
        gateways.push(await startGateway({ env }));
      }
      lb = await startHaproxy(gateways.map((g, i) => ({ name: `gw${i}`, port: g.port })));
      relay = await startRelay(Number(new URL(lb.url).port));
    });
    after(async () => {
      await relay?.close();
      await lb?.stop();
      for (const g of gateways ?? []) await g.stop();
      await redis?.stop();
    });

    it('without the option, long-polling gets "Session ID unknown" and misses messages', async () => {
      const code = guideSnippet().replace(OPTION, '');
      assert.ok(!code.includes('withCredentials'), 'the option is taken out');
      const apps = Array.from({ length: 4 }, () => runApp(code, lb.url, { transports: ['polling'] }));
      // A subscriber on a replica directly, past the balancer: when it has everything, so could they.
      const reference = runApp(guideSnippet(), gateways[1]!.url, { transports: ['websocket'] });
      await waitFor('the reference client subscribed', () => reference.subscribes.length === 1 && reference.connects === 1);
      await reference.subscribes[0];
      await waitFor('the apps were refused sessions', () => apps.reduce((n, a) => n + a.unknownSession, 0) >= apps.length, 20_000);
      for (let i = 0; i < 20; i++) await send(i, gateways[1]!);
      await waitFor('the reference client has every message', () => reference.scores.length === 20);
      const got = apps.map((a) => a.scores.length);
      console.log(`# ${transport}, no option: "Session ID unknown" ${apps.map((a) => a.unknownSession).join('/')} times, messages ${got.join('/')} of 20`);
      assert.ok(
        got.reduce((n, g) => n + g, 0) < apps.length * 20,
        `messages are missed (${got.join('/')} of 20 each)`,
      );
      for (const a of [...apps, reference]) a.socket.close();
    });

    it('with withCredentials: true, every message once and in order, every reconnect recovered, across resets and a drain', async () => {
      const code = guideSnippet();
      // As written (long-polling first, then the upgrade to WebSocket), and long-polling throughout.
      const apps = [
        ...Array.from({ length: 3 }, () => runApp(code, relay.url)),
        ...Array.from({ length: 3 }, () => runApp(code, relay.url, { transports: ['polling'] })),
      ];
      await waitFor('every app subscribed', () => apps.every((a) => a.subscribes.length === 1), 20_000);
      for (const a of apps) assert.equal(((await a.subscribes[0]) as { ok: boolean }).ok, true);

      // A long-polling client holds a TCP connection only while a request is open, so one reset
      // may miss it: drop every connection again, once all are back and caught up (a network
      // drop now and then, not one in the middle of a recovery's replay), until each app was hit.
      let published = 0;
      const dropEveryone = (connects: number) =>
        waitFor(
          `every app reconnected (${connects} connects)`,
          () => {
            if (apps.every((a) => a.connects >= connects)) return true;
            if (apps.every((a) => a.socket.connected && a.scores.length === published)) relay.resetAll();
            return false;
          },
          20_000,
        );
      const survivor = gateways[1]!;
      for (let i = 0; i < MESSAGES; i++) {
        await send(i, survivor);
        published++;
        if (i === 40 || i === 80) await dropEveryone(i === 40 ? 2 : 3);
        if (i === 120) {
          gateways[0]!.signal('SIGTERM');
          await gateways[0]!.exited();
        }
      }
      await waitFor('every app has every message', () => apps.every((a) => a.scores.length >= MESSAGES), 20_000).catch((e) => {
        console.log(apps.map((a) => JSON.stringify([a.scores.length, a.connects, a.recovered, a.socket.connected, a.socket.io.engine?.transport?.name, a.unknownSession, a.replicas, a.reloads])));
        throw e;
      });
      const expected = Array.from({ length: MESSAGES }, (_, i) => i);
      for (const a of apps) {
        assert.deepEqual(a.scores, expected, 'every message once, in order');
        assert.ok(a.connects >= 3, `reconnected twice at least (${a.connects} connects)`);
        assert.deepEqual(a.recovered, Array(a.connects - 1).fill(true), 'every reconnect recovered');
        assert.equal(a.subscribes.length, 1, 'subscribed once, at the first connect');
        assert.equal(a.reloads, 0, 'nothing to reload');
        assert.equal(a.unknownSession, 0, 'no request reached a replica that did not know its session');
      }
      const drained = gateways[0]!.replicaId;
      const moved = apps.filter((a) => a.replicas.includes(drained) && a.replicas.at(-1) !== drained).length;
      assert.ok(moved > 0, 'some apps were on the drained replica and moved off it');
      console.log(`# ${transport}, withCredentials: ${apps.reduce((n, a) => n + a.connects - 1, 0)} recovered reconnects of ${apps.length} apps, ${moved} moved off the drained replica`);
      for (const a of apps) a.socket.close();
    });
  });
}
