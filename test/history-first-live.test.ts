import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { io as connect, type Socket } from 'socket.io-client';
import { publish } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { onceWithin, waitFor } from './helpers/wait.js';

const KEY = 'history-first-live-key-0123456789';
const ROOM = 'fl:scores';
const FANS = 3;

interface Fan {
  socket: Socket;
  /** [meta.id, recovery offset] of each message of ROOM, as received. */
  got: [string, string][];
  recovered: boolean[];
}

async function fan(url: string): Promise<Fan> {
  const socket = connect(url, { transports: ['websocket'], forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 300 });
  const f: Fan = { socket, got: [], recovered: [] };
  socket.on('m', (_data: unknown, meta: { room: string; id: string }, offset: string) => {
    if (meta.room === ROOM) f.got.push([meta.id, offset]);
  });
  let connects = 0;
  socket.on('connect', () => {
    if (++connects > 1) f.recovered.push(socket.recovered);
  });
  await onceWithin(socket, 'connect', 'connect');
  return f;
}

/**
 * A fresh subscribe to a history room settles on the room's position; the first live entry past
 * it is that subscriber's first live message. It goes out in the room's one delivery with every
 * other member (the uWS topic's fast path), not written to each new subscriber alone: every fan
 * receives it under the same recovery offset, and that offset still tells recovery where the fan
 * is (nothing sent again, nothing missed).
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`the first live message after a fresh subscribe (TRANSPORT=${transport})`, () => {
    let redis: RedisProcess;
    let gw: Gateway;

    before(async () => {
      redis = await startRedis();
      gw = await startGateway({ env: { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'fl:*', TRANSPORT: transport } });
    });
    after(async () => {
      await gw?.stop();
      await redis?.stop();
    });

    it('reaches every new subscriber in one shared delivery, and recovery counts it', async () => {
      const fans = await Promise.all(Array.from({ length: FANS }, () => fan(gw.url)));
      for (const f of fans) assert.equal(((await f.socket.timeout(5000).emitWithAck('subscribe', ROOM)) as { ok: boolean }).ok, true);
      const ids: string[] = [];
      const post = async (i: number) => {
        const r = await publish(gw.url, { room: ROOM, event: 'm', data: i }, KEY);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        ids.push((r.body as { ids: Record<string, string> }).ids[ROOM]!);
      };

      await post(0);
      await waitFor('every fan has the first message', () => fans.every((f) => f.got.length === 1), 10_000);
      const offsets = new Set(fans.map((f) => f.got[0]![1]));
      assert.equal(offsets.size, 1, `one delivery for all, under one offset: ${[...offsets].join(' ')}`);
      assert.deepEqual(fans.map((f) => f.got[0]![0]), Array(FANS).fill(ids[0]));

      // The first fan drops right after it; what follows comes back through connection recovery from that offset.
      const dropped = fans[0]!;
      dropped.socket.io.engine.close();
      await post(1);
      await waitFor('the dropped fan back', () => dropped.recovered.length === 1, 10_000);
      assert.deepEqual(dropped.recovered, [true], 'recovered from the shared offset');
      await post(2);
      await waitFor('every fan has every message', () => fans.every((f) => f.got.length >= 3), 10_000);
      for (const f of fans) assert.deepEqual(f.got.map(([id]) => id), ids, 'every message once, in order');
      for (const f of fans) f.socket.close();
    });
  });
}
