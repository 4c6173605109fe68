import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { compareIds } from '../src/protocol/ids.js';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { startRelay, type Relay } from './helpers/relay.js';
import { streamClient, streamFaults, type StreamClient } from './helpers/stream-clients.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'unknown-position-key-0123456789';
const ROOM = 'pos:feed';
/** The smallest journal a room may have: a client that misses more than this has an unknown position. */
const JOURNAL = 10;

/**
 * A restored session whose position in a history room cannot be told any more (the journal
 * dropped the entries its offset falls among). herald must not put the socket back in that room at
 * the room's current position: live messages would then reach it ahead of the older ones a
 * `subscribe {since}` replays. The room is left out of the restore (`recovered: false`), and the
 * explicit contract's re-subscribe gets every message once and in order while publishing goes on.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`a restore whose history position is unknown (TRANSPORT=${transport})`, () => {
    let redis: RedisProcess;
    let gw: Gateway;
    let relay: Relay;
    let client: StreamClient;
    let member: TestClient;

    before(async () => {
      redis = await startRedis();
      gw = await startGateway({
        env: { TRANSPORT: transport, REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'pos:*', RECOVERY_JOURNAL_ROOM_ENTRIES: String(JOURNAL) },
      });
      relay = await startRelay(gw.port);
      await waitFor('the gateway ready', async () => (await getJson(`${gw.url}/readyz`)).status === 200);
    });
    after(async () => {
      client?.socket.close();
      member?.close();
      await relay?.close();
      await gw?.stop();
      await redis?.stop();
    });

    it('leaves the room out of the restore, and since replays it once and in order', async () => {
      client = await streamClient(relay.url, { contract: 'explicit', history: [ROOM] });
      // A member that stays: the room's deliveries keep being journaled while the client is away.
      member = await connectClient(gw.url);
      assert.equal(((await member.subscribe(ROOM)) as { ok: boolean }).ok, true);
      const acked: string[] = [];
      const publishOne = async () => {
        const r = await publish(gw.url, { room: ROOM, event: 'm', data: acked.length }, KEY);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        acked.push((r.body as { ids: Record<string, string> }).ids[ROOM]!);
      };
      for (let i = 0; i < 5; i++) await publishOne();
      await waitFor('the client has the first messages', () => client.got[ROOM]!.length === 5);
      // The client stops receiving while three journals' worth are delivered, then its connection drops.
      relay.hold();
      for (let i = 0; i < JOURNAL * 3; i++) await publishOne();
      await waitFor('the member has them', () => member.received.length === acked.length);
      relay.resetAll();
      relay.release();
      // Publishing goes on while it reconnects, restores and re-subscribes.
      const reconnected = () => client.connects >= 2 && client.acks.length >= 2;
      while (!reconnected() && acked.length < 400) await publishOne();
      for (let i = 0; i < 10; i++) await publishOne();
      await waitFor('the client has the last message', () => client.got[ROOM]!.includes(acked.at(-1)!), 15_000);
      const ids = client.got[ROOM]!;
      const faults = streamFaults(ids, compareIds);
      assert.deepEqual(ids, acked, `every message once and in order: ${faults.duplicates} duplicates, ${faults.backwards} out of order`);
      assert.deepEqual(client.recovered, [false], 'the restore could not tell the position: recovered false');
      assert.equal(client.acks.at(-1)!.ack.recovered, true, `the since subscribe recovered: ${JSON.stringify(client.acks.at(-1))}`);
    });
  });
}
