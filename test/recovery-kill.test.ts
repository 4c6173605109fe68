import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectRecovering, publish, type RecoveringClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
const CLIENTS = 200;
const MESSAGES = 1000;
const ROOMS = ['feed:a', 'feed:b'];
const KILL_AFTER = 300;

describe('kill -9 of a replica under load, with history rooms', () => {
  let redis: RedisProcess;
  let gateways: Gateway[] = [];
  const clients: { c: RecoveringClient; room: string; home: number }[] = [];

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'feed:*' };
    gateways = await Promise.all([0, 1, 2].map(() => startGateway({ env })));
  });

  after(async () => {
    for (const { c } of clients) c.close();
    await Promise.all(gateways.map((g) => g.stop()));
    await redis?.stop();
  });

  it(`every one of ${CLIENTS} clients ends with all ${MESSAGES} messages of its room, in order, once`, async () => {
    for (let i = 0; i < CLIENTS; i += 20) {
      const batch = Array.from({ length: Math.min(20, CLIENTS - i) }, (_, k) => i + k);
      clients.push(
        ...(await Promise.all(
          batch.map(async (n) => {
            const home = n % 3;
            const room = ROOMS[n % ROOMS.length]!;
            return { c: await connectRecovering(gateways[home]!.url, room), room, home };
          }),
        )),
      );
    }
    const victim = 2;
    const survivors = [gateways[0]!, gateways[1]!];
    // What a load balancer does: the next connection of a client of the dead replica goes to a survivor.
    clients
      .filter((x) => x.home === victim)
      .forEach((x, i) => x.c.socket.on('disconnect', () => {
        (x.c.socket.io as unknown as { uri: string }).uri = survivors[i % 2]!.url;
      }));

    for (let n = 1; n <= MESSAGES; n++) {
      if (n === KILL_AFTER + 1) gateways[victim]!.signal('SIGKILL');
      for (const [r, room] of ROOMS.entries()) {
        const res = await publish(survivors[(n + r) % 2]!.url, { room, event: 'seq', data: n }, KEY);
        assert.equal(res.status, 200);
      }
    }

    const seqOf = (c: RecoveringClient, room: string) => c.received.filter((m) => m.meta?.room === room).map((m) => m.data as number);
    await waitFor(
      'every client to have the last message',
      () => clients.every(({ c, room }) => seqOf(c, room).includes(MESSAGES)),
      30_000,
    );
    const expected = Array.from({ length: MESSAGES }, (_, i) => i + 1);
    let duplicates = 0;
    let gaps = 0;
    for (const { c, room } of clients) {
      const got = seqOf(c, room);
      duplicates += got.length - new Set(got).size;
      gaps += expected.filter((n) => !got.includes(n)).length;
    }
    const moved = clients.filter((x) => x.home === victim);
    const recoveredAcks = moved.flatMap((x) => x.c.acks.slice(1)).filter((a) => (a as { recovered?: boolean }).recovered === true).length;
    console.log(
      `# kill -9: ${CLIENTS} clients (${moved.length} on the killed replica), ${MESSAGES} messages x ${ROOMS.length} rooms; ` +
        `resubscribes with recovered:true ${recoveredAcks}/${moved.length}; gaps ${gaps}; duplicates ${duplicates}`,
    );
    assert.equal(recoveredAcks, moved.length, 'each moved client recovered');
    for (const { c, room } of clients) assert.deepEqual(seqOf(c, room), expected);
  });
});
