import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DroppingRelay } from '../loadtest/harness/jitter.js';
import { compareIds } from '../src/protocol/ids.js';
import { getJson, publish } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { streamClient, streamFaults, type StreamClient } from './helpers/stream-clients.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'recovery-contracts-key-0123456789';
const H1 = 'rc:h1';
const H2 = 'rc:h2';
const PLAIN = 'plain:p';
const MESSAGES = 480;
/** Between publishes: about 150 a second. */
const RATE_GAP_MS = 5;

/** The mixes of rooms a session can have: what makes connection recovery whole or partial. */
const SESSIONS = [
  { name: 'one history room', history: [H1], plain: [] },
  { name: 'a history room and a plain one (partial recovery)', history: [H1], plain: [PLAIN] },
  { name: 'two history rooms', history: [H1, H2], plain: [] },
] as const;

/**
 * The client contract's explicit `since` client, with connection recovery on (the default): on
 * every connect, recovered or not, it subscribes to each history room with the last `meta.id` it
 * received. So herald restores its rooms and replays what it missed, and then the client asks for
 * the same again. The two together must still deliver every message once and in order, whatever mix of
 * rooms the session has, across connection resets (to either of two replicas) and a drain.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`connection recovery and subscribe with since together (TRANSPORT=${transport})`, () => {
    let redis: RedisProcess;
    const gateways: Gateway[] = [];
    let relay: DroppingRelay;
    const clients: { session: (typeof SESSIONS)[number]; client: StreamClient }[] = [];

    before(async () => {
      redis = await startRedis();
      const env = { TRANSPORT: transport, REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'rc:*', DRAIN_SECONDS: '1' };
      gateways.push(await startGateway({ env }), await startGateway({ env }));
      relay = await DroppingRelay.start(gateways.map((g) => ({ host: '127.0.0.1', port: g.port })));
      // Their Redis connections are up (history publishes before that answer 503).
      for (const g of gateways) await waitFor('the gateway ready', async () => (await getJson(`${g.url}/readyz`)).status === 200);
    });
    after(async () => {
      for (const { client } of clients) client.socket.close();
      await relay?.close();
      for (const g of gateways) await g.stop();
      await redis?.stop();
    });

    it('delivers every message once and in order across resets and a drain', async () => {
      for (const session of SESSIONS) {
        for (let i = 0; i < 2; i++) clients.push({ session, client: await streamClient(relay.url, { contract: 'explicit', history: session.history, plain: session.plain }) });
      }
      const acked: Record<string, string[]> = { [H1]: [], [H2]: [] };
      const [draining, survivor] = gateways as [Gateway, Gateway];
      let published = 0;
      // A steady publisher, on while clients drop and come back: they always have something to recover.
      const publisher = (async () => {
        for (; published < MESSAGES; published++) {
          const room = [H1, H2, PLAIN][published % 3]!;
          const r = await publish(survivor.url, { room, event: 'm', data: published }, KEY);
          assert.equal(r.status, 200, JSON.stringify(r.body));
          if (room !== PLAIN) acked[room]!.push((r.body as { ids: Record<string, string> }).ids[room]!);
          await new Promise((resolve) => setTimeout(resolve, RATE_GAP_MS));
        }
      })();
      const reconnected = (atLeast: number) => clients.every(({ client }) => client.connects >= atLeast && client.socket.connected);
      for (const [at, connects] of [[MESSAGES / 4, 2], [MESSAGES / 2, 3]] as const) {
        await waitFor(`${at} published`, () => published >= at, 20_000);
        assert.ok(relay.dropAll() >= clients.length, 'every client connection was reset');
        await waitFor('every client reconnected', () => reconnected(connects), 20_000);
      }
      await waitFor(`${(3 * MESSAGES) / 4} published`, () => published >= (3 * MESSAGES) / 4, 20_000);
      // The balancer sends new connections to the survivor; the drain closes the other's.
      relay.retarget([{ host: '127.0.0.1', port: survivor.port }]);
      draining.signal('SIGTERM');
      await draining.exited();
      await publisher;
      const state = () => clients.map(({ session, client: c }) => `${session.name}: ${session.history.map((r) => c.got[r]!.length).join('/')} received, ${c.connects} connects`).join('; ');
      await waitFor(
        'every client has the last acknowledged message of its history rooms',
        () => clients.every(({ session, client }) => session.history.every((room) => client.got[room]!.includes(acked[room]!.at(-1)!))),
        20_000,
      ).catch((err: Error) => assert.fail(`${err.message} (${state()})`));

      let duplicates = 0;
      for (const { session, client } of clients) {
        for (const room of session.history) {
          const faults = streamFaults(client.got[room]!, compareIds);
          duplicates += faults.duplicates;
          assert.deepEqual(client.got[room], acked[room], `${session.name}, ${room}: ${faults.duplicates} duplicates, ${faults.backwards} out of order`);
        }
        assert.deepEqual(client.resets, [], `${session.name}: no herald:reset`);
        for (const a of client.acks) assert.ok(a.ack.ok && (a.since === undefined || a.ack.recovered === true), `${session.name}: ${JSON.stringify(a)}`);
        // Only a session with a plain room is restored in part (socket.recovered false).
        assert.ok(client.recovered.every((r) => r === (session.plain.length === 0)), `${session.name}: recovered ${client.recovered.join(', ')}`);
      }
      const moved = clients.filter(({ client }) => client.replicas.includes(draining.replicaId)).length;
      console.log(`# ${transport}: ${clients.reduce((n, { client }) => n + client.connects - 1, 0)} reconnects, ${moved} clients had been on the drained replica, ${duplicates} duplicates`);
    });
  });
}
