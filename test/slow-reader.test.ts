import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { compareIds } from '../src/protocol/ids.js';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { startRelay, type Relay } from './helpers/relay.js';
import { streamClient, streamFaults, type StreamClient } from './helpers/stream-clients.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'slow-reader-key-0123456789';
const ROOM = 'slow:feed';
const BOUND = 64 * 1024;
const PAD = 'p'.repeat(4096);
/** Published before the readers stop reading, and after they read again. */
const BEFORE = 20;
const AFTER = 30;
/** Upper bound on publishes while they do not read (the room keeps 5,000: nothing is trimmed). */
const MAX_HELD = 1500;

/**
 * Clients that stop reading while connected (a relay in front of the replica stops reading what
 * it sends, so the kernel buffers fill and then herald's queue), in a history room with a steady
 * publisher, then read again. Past SLOW_CLIENT_MAX_BYTES each is closed, never skipped: it
 * received a prefix of the stream, reconnects, and recovers the rest, by connection recovery or by
 * `subscribe {since}`. Every client ends with every acknowledged message once and in order, and
 * no recovery says `recovered: true` over a gap. A client that reads all along is untouched.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`a client that stops reading (TRANSPORT=${transport})`, () => {
    let redis: RedisProcess;
    let gw: Gateway;
    let relay: Relay;
    const clients: StreamClient[] = [];
    let healthy: TestClient;

    before(async () => {
      redis = await startRedis();
      gw = await startGateway({
        env: { TRANSPORT: transport, REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'slow:* size=5000', SLOW_CLIENT_MAX_BYTES: String(BOUND) },
      });
      relay = await startRelay(gw.port);
      // Its Redis connection is up (history publishes before that answer 503).
      await waitFor('the gateway ready', async () => (await getJson(`${gw.url}/readyz`)).status === 200);
    });
    after(async () => {
      for (const c of clients) c.socket.close();
      healthy?.close();
      await relay?.close();
      await gw?.stop();
      await redis?.stop();
    });

    it('is closed past the bound, reconnects, and has every message once and in order', async () => {
      const readers = [
        { name: 'connection recovery, WebSocket', client: await streamClient(relay.url, { contract: 'builtin', history: [ROOM] }) },
        { name: 'subscribe with since, WebSocket', client: await streamClient(relay.url, { contract: 'explicit', history: [ROOM] }) },
        // Long-polling on uWS: Engine.IO's buffer there used to have no bound at all.
        ...(transport === 'uws' ? [{ name: 'connection recovery, long-polling', client: await streamClient(relay.url, { contract: 'builtin', history: [ROOM], transport: 'polling' }) }] : []),
      ];
      clients.push(...readers.map((r) => r.client));
      healthy = await connectClient(gw.url);
      assert.equal((await healthy.subscribe(ROOM) as { ok: boolean }).ok, true);

      const acked: string[] = [];
      const publishOne = async () => {
        const r = await publish(gw.url, { room: ROOM, event: 'm', data: { n: acked.length, pad: PAD } }, KEY);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        acked.push((r.body as { ids: Record<string, string> }).ids[ROOM]!);
      };
      const disconnects = async () => (await getJson(`${gw.url}/readyz`)).body.slowConsumerDisconnects as number;

      for (let i = 0; i < BEFORE; i++) await publishOne();
      relay.hold();
      let held = 0;
      while (held < MAX_HELD && (held % 25 !== 0 || (await disconnects()) < readers.length)) {
        await publishOne();
        held++;
      }
      relay.release();
      for (let i = 0; i < AFTER; i++) await publishOne();

      const state = () => readers.map(({ name, client: c }) => `${name}: ${c.got[ROOM]!.length} received, ${c.connects} connects, connected ${c.socket.connected}`).join('; ');
      await waitFor(
        'every client has the last acknowledged message',
        () => [...readers.map((r) => r.client.got[ROOM]!), healthy.received.map((r) => r.meta.id)].every((ids) => ids.includes(acked.at(-1)!)),
        20_000,
      ).catch((err: Error) => assert.fail(`${err.message} (${acked.length} published; ${state()})`));
      for (const { name, client } of readers) {
        const ids = client.got[ROOM]!;
        const faults = streamFaults(ids, compareIds);
        const missing = acked.filter((id) => !ids.includes(id)).length;
        assert.deepEqual(ids, acked, `${name}: ${missing} missing, ${faults.duplicates} duplicates, ${faults.backwards} out of order`);
        assert.ok(client.connects >= 2, `${name}: closed and reconnected (${client.connects} connects)`);
        assert.deepEqual(client.resets, [], `${name}: no herald:reset`);
        // A history room alone: nothing can have been lost, so every restore is whole.
        assert.ok(client.recovered.every(Boolean), `${name}: every reconnect recovered (${client.recovered.join(', ')})`);
        for (const a of client.acks.slice(1)) assert.equal(a.ack.recovered, true, `${name}: ${JSON.stringify(a)}`);
      }
      assert.deepEqual(healthy.received.map((r) => r.meta.id), acked, 'the client that kept reading got everything, in order');
      assert.equal(healthy.socket.connected, true);
      assert.ok((await disconnects()) >= readers.length, `each slow reader was counted: ${await disconnects()} ${JSON.stringify(gw.logs.filter((l) => l.level >= 30 && l.msg !== 'listening').slice(-10))}`);
      const logged = gw.logs.filter((l) => l.reason === 'slow_consumer');
      assert.ok(logged.length >= readers.length, `logged with reason slow_consumer: ${JSON.stringify(logged)}`);
      console.log(`# ${transport}: ${held} publishes of ${PAD.length} B while not reading; ${clients.map((c) => c.connects - 1).join(', ')} reconnects`);
    });
  });
}
