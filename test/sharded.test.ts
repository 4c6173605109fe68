import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, connectRecovering, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { startRedisCluster, type RedisCluster } from './helpers/redis-cluster.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
const channelOf = (room: string) => `socket.io#/#${room}#`;

async function receivedFromRedis(gw: Gateway): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
  return Number(/^herald_redis_messages_received_total (\d+)/m.exec(text)?.[1] ?? NaN);
}

describe('sharded mode on a 3-master Redis Cluster', () => {
  let cluster: RedisCluster;
  const gateways: Gateway[] = [];
  const clients: TestClient[] = [];
  const client = async (gw: Gateway) => {
    const c = await connectClient(gw.url, { reconnection: true });
    clients.push(c);
    return c;
  };
  /** Room names whose adapter channels live on `n` different masters. */
  const roomsOnDistinctShards = async (prefix: string, n: number) => {
    const byMaster = new Map<number, string>();
    for (let i = 0; byMaster.size < n && i < 1000; i++) {
      const room = `${prefix}:${i}`;
      const master = await cluster.masterFor(channelOf(room));
      if (!byMaster.has(master)) byMaster.set(master, room);
    }
    assert.equal(byMaster.size, n);
    return [...byMaster.values()];
  };

  before(async () => {
    cluster = await startRedisCluster(3, 1);
    const env = {
      REDIS_MODE: 'sharded',
      REDIS_CLUSTER_NODES: cluster.urls.join(','),
      PUBLISH_KEYS: KEY,
      HISTORY_ROOMS: 'hist:*',
      PRESENCE_ROOMS: 'chat:*',
    };
    for (let i = 0; i < 3; i++) gateways.push(await startGateway({ env: { ...env, REPLICA_ID: `shard-gw-${i}` } }));
    for (const g of gateways) await waitFor(`${g.replicaId} ready`, async () => (await getJson(`${g.url}/readyz`)).status === 200);
  });

  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(gateways.map((g) => g.stop()));
    await cluster?.stop();
  });

  it('delivers rooms that hash to different shards across replicas, exactly once', async () => {
    const rooms = await roomsOnDistinctShards('shard', 3);
    const subs = await Promise.all(gateways.map((g) => client(g)));
    for (const c of subs) for (const room of rooms) assert.deepEqual(await c.subscribe(room), { ok: true, room });
    const ids: Record<string, string[]> = {};
    for (const room of rooms) {
      ids[room] = [];
      for (let i = 0; i < 10; i++) ids[room]!.push((await publish(gateways[i % 3]!.url, { room, event: 'm', data: i }, KEY)).body.id);
      await publish(gateways[0]!.url, { room, event: 'end', data: null }, KEY);
    }
    for (const c of subs) {
      for (const room of rooms) {
        await c.waitFor(`end of ${room}`, (r) => r.event === 'end' && r.meta.room === room);
        assert.deepEqual(c.received.filter((r) => r.event === 'm' && r.meta.room === room).map((r) => r.meta.id), ids[room]);
      }
    }
  });

  it('a replica with no member in a room receives none of its messages from Redis, until a client there subscribes', async () => {
    const [a, b, quiet] = gateways as [Gateway, Gateway, Gateway];
    const room = 'quiet:x';
    const members = [await client(a), await client(b)];
    for (const c of members) await c.subscribe(room);
    const before = await receivedFromRedis(quiet);
    for (let i = 0; i < 50; i++) await publish(a.url, { room, event: 'm', data: i }, KEY);
    await publish(a.url, { room, event: 'end', data: null }, KEY);
    await Promise.all(members.map((c) => c.waitFor('all 50', (r) => r.event === 'end')));
    const during = await receivedFromRedis(quiet);
    assert.equal(during - before, 0, `the replica without members received ${during - before} messages`);
    // b (a member) did receive them from Redis: the counter is live.
    assert.ok((await receivedFromRedis(b)) > 0);

    const late = await client(quiet);
    await late.subscribe(room);
    for (let i = 0; i < 10; i++) await publish(a.url, { room, event: 'late', data: i }, KEY);
    await late.waitFor('the 10 after subscribing', (r) => r.event === 'late' && r.data === 9);
    assert.equal((await receivedFromRedis(quiet)) - during, 10);
    console.log(`# sharded: replica without members: +${during - before} Redis messages for 51 publishes; after one subscribed: +10 for 10`);
  });

  it('recovers history and counts presence for rooms on every shard', async () => {
    const histRooms = await roomsOnDistinctShards('hist', 3);
    for (const room of histRooms) {
      const first = await client(gateways[0]!);
      const ack = (await first.subscribe(room)) as { offset: string };
      first.close();
      for (let i = 1; i <= 5; i++) await publish(gateways[1]!.url, { room, event: 'm', data: i }, KEY);
      const back = await client(gateways[2]!);
      const again = (await back.subscribe({ room, since: ack.offset })) as { recovered: boolean };
      assert.equal(again.recovered, true, room);
      await back.waitFor(`5 in ${room}`, (r) => r.meta?.room === room && r.data === 5);
      assert.deepEqual(back.received.filter((r) => r.meta?.room === room).map((r) => r.data), [1, 2, 3, 4, 5]);
    }
    const chatRooms = await roomsOnDistinctShards('chat', 3);
    for (const [i, room] of chatRooms.entries()) {
      for (let k = 0; k <= i; k++) await (await client(gateways[k % 3]!)).subscribe(room);
    }
    for (const [i, room] of chatRooms.entries()) {
      await waitFor(`presence of ${room}`, async () => {
        const res = await fetch(`${gateways[(i + 1) % 3]!.url}/v1/rooms/${room}/presence`, { headers: { authorization: `Bearer ${KEY}` } });
        return ((await res.json()) as { connections: number }).connections === i + 1;
      });
    }
  });

  it('follows a master failover without restarting gateways', async () => {
    const room = 'failover:1';
    const subs: TestClient[] = [];
    for (const g of gateways) {
      const c = await connectRecovering(g.url, room);
      clients.push(c);
      subs.push(c);
    }
    await publish(gateways[0]!.url, { room, event: 'm', data: 'before' }, KEY);
    await Promise.all(subs.map((c) => c.waitFor('before', (r) => r.data === 'before')));
    const master = await cluster.masterFor(channelOf(room));
    const killedAt = Date.now();
    await cluster.killAndAwaitFailover(master);
    const promotedAfter = Date.now() - killedAt;
    // Publish until every subscriber hears one again: the gateways must find the new master themselves.
    let n = 0;
    await waitFor(
      'delivery after the failover',
      async () => {
        await publish(gateways[n % 3]!.url, { room, event: 'm', data: `after-${n++}` }, KEY).catch(() => undefined);
        return subs.every((c) => c.received.some((r) => String(r.data).startsWith('after-')));
      },
      30_000,
    );
    console.log(`# sharded failover: replica promoted ${promotedAfter} ms after the kill; delivery back after ${Date.now() - killedAt} ms, ${n} publishes tried`);
    for (const g of gateways) assert.equal(g.process.exitCode, null);
  });
});

describe('sharded mode on a single Redis 7', () => {
  let redis: RedisProcess;
  const gateways: Gateway[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_MODE: 'sharded', REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'hist:*' };
    for (let i = 0; i < 2; i++) gateways.push(await startGateway({ env }));
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(gateways.map((g) => g.stop()));
    await redis?.stop();
  });

  it('shares rooms and history rooms across replicas with per-room subscriptions', async () => {
    const [a, b] = gateways as [Gateway, Gateway];
    const c = await connectClient(b.url);
    clients.push(c);
    await c.subscribe('plain:1');
    await c.subscribe('hist:1');
    await publish(a.url, { room: 'plain:1', event: 'm', data: 'plain' }, KEY);
    await publish(a.url, { room: 'hist:1', event: 'm', data: 'hist' }, KEY);
    await c.waitFor('plain', (r) => r.data === 'plain');
    await c.waitFor('hist', (r) => r.data === 'hist');
    const before = await receivedFromRedis(a);
    await publish(b.url, { room: 'plain:1', event: 'm', data: 'x' }, KEY);
    await c.waitFor('x', (r) => r.data === 'x');
    assert.equal((await receivedFromRedis(a)) - before, 0, 'a replica without members hears nothing');
  });
});
