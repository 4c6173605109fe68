import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { io as connect, type Socket } from 'socket.io-client';
import { publish } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startHaproxy, type Haproxy } from './helpers/haproxy.js';
import { freePort } from './helpers/ports.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { startRelay, type Relay } from './helpers/relay.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'zero-code-recovery-key-0123456789';
const ROOMS = ['rec:a', 'rec:b'] as const;
const CLIENTS = 6;
const MESSAGES = 240;

/**
 * Plain socket.io-client clients, with no recovery code of their own: they subscribe once, at
 * their first connect, and never again. Between them and two replicas + Redis: HAProxy (the
 * compose file's config) and, in front of it, a TCP relay that resets every connection twice
 * mid-stream; later one replica drains. Every reconnect must be recovered, and every client must
 * end with every acknowledged message of both rooms, once each, in order.
 */
const cases: { name: string; env: Record<string, string> }[] = [
  { name: 'classic pub/sub, uWS transport', env: { TRANSPORT: 'uws' } },
  { name: 'sharded pub/sub, uWS transport', env: { TRANSPORT: 'uws', REDIS_MODE: 'sharded' } },
  { name: 'classic pub/sub, node transport', env: { TRANSPORT: 'node' } },
];

for (const c of cases) {
  describe(`zero-code recovery behind HAProxy: ${c.name}`, () => {
    let redis: RedisProcess;
    let gateways: Gateway[];
    let lb: Haproxy;
    let relay: Relay;

    before(async () => {
      redis = await startRedis();
      gateways = [];
      for (let i = 0; i < 2; i++) {
        const port = await freePort();
        gateways.push(
          await startGateway({
            env: { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'rec:*', PORT: String(port), DRAIN_SECONDS: '1', ...c.env },
          }),
        );
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

    it('recovers every reconnect and delivers every acknowledged message once, in order, across resets and a drain', async () => {
      const clients = await Promise.all(Array.from({ length: CLIENTS }, () => plainClient(relay.url)));
      await Promise.all(clients.map((cl) => cl.subscribed));

      const acked: Record<string, string[]> = { [ROOMS[0]]: [], [ROOMS[1]]: [] };
      const survivor = gateways[1]!;
      for (let i = 0; i < MESSAGES; i++) {
        const room = ROOMS[i % 2]!;
        const r = await publish(survivor.url, { room, event: 'm', data: i }, KEY);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        acked[room]!.push((r.body as { ids: Record<string, string> }).ids[room]!);
        if (i === 60 || i === 120) {
          assert.ok(relay.resetAll() >= CLIENTS, 'every client connection was reset');
          await waitFor('every client reconnected', () => clients.every((cl) => cl.connects >= (i === 60 ? 2 : 3)), 20_000);
        }
        if (i === 180) {
          gateways[0]!.signal('SIGTERM');
          await gateways[0]!.exited();
        }
      }
      await waitFor(
        'every client has every acknowledged message',
        () => clients.every((cl) => ROOMS.every((room) => cl.got[room]!.length >= acked[room]!.length)),
        20_000,
      );
      for (const cl of clients) {
        for (const room of ROOMS) assert.deepEqual(cl.got[room], acked[room], `${room}: every message once, in order`);
        assert.ok(cl.connects >= 3, `reconnected twice at least (${cl.connects} connects)`);
        assert.deepEqual(cl.recovered, Array(cl.connects - 1).fill(true), 'every reconnect recovered');
      }
      const drained = clients.filter((cl) => cl.replicas.includes(gateways[0]!.replicaId) && cl.replicas.at(-1) !== gateways[0]!.replicaId);
      console.log(`# ${c.name}: ${clients.reduce((n, cl) => n + cl.connects - 1, 0)} recovered reconnects, ${drained.length} clients moved off the drained replica`);
      for (const cl of clients) cl.socket.close();
    });
  });
}

interface PlainClient {
  socket: Socket;
  got: Record<string, string[]>;
  connects: number;
  recovered: boolean[];
  replicas: string[];
  subscribed: Promise<void>;
}

/** What an application writes with herald's client contract: `io(url)`, one subscribe per room at the first connect, handlers. */
function plainClient(url: string): Promise<PlainClient> {
  const socket = connect(url, { transports: ['websocket'], forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 300 });
  const cl: PlainClient = { socket, got: { [ROOMS[0]]: [], [ROOMS[1]]: [] }, connects: 0, recovered: [], replicas: [], subscribed: Promise.resolve() };
  socket.on('m', (_data: unknown, meta: { room: string; id: string }) => cl.got[meta.room]!.push(meta.id));
  socket.on('herald:hello', (hello: { replica: string }) => cl.replicas.push(hello.replica));
  return new Promise((resolve) => {
    socket.on('connect', () => {
      cl.connects++;
      if (cl.connects > 1) {
        cl.recovered.push(socket.recovered);
        return;
      }
      cl.subscribed = Promise.all(ROOMS.map((room) => socket.timeout(5000).emitWithAck('subscribe', room))).then((acks) => {
        for (const ack of acks) assert.equal((ack as { ok: boolean }).ok, true);
      });
      resolve(cl);
    });
  });
}
