import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { connectClient, type TestClient } from './helpers/clients.js';
import { startBackend, startGateway, type Gateway } from './helpers/gateway.js';
import type { RedisProcess } from './helpers/redis.js';
import { onceWithin, waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
const SECRET = 'test-jwt-secret-0123456789-abcdefghij';
const TTL = 3;

const token = (sub: string) =>
  new SignJWT({ sub, rooms: ['chat:*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(new TextEncoder().encode(SECRET));

for (const backend of ['memory', 'redis'] as const) {
  describe(`presence (${backend})`, () => {
    let redis: RedisProcess | undefined;
    const gateways: Gateway[] = [];
    const clients: TestClient[] = [];
    let env: Record<string, string>;
    const as = async (gw: Gateway, user: string | undefined) => {
      const c = await connectClient(gw.url, { auth: user ? { token: await token(user) } : undefined, reconnection: false });
      clients.push(c);
      return c;
    };
    const presenceOf = async (gw: Gateway, room: string, query = '') => {
      const res = await fetch(`${gw.url}/v1/rooms/${room}/presence${query}`, { headers: { authorization: `Bearer ${KEY}` } });
      return { status: res.status, body: (await res.json()) as any };
    };
    /** Waits until every running replica reports this presence for `room`. */
    const converge = (room: string, connections: number, users: string[], bound?: number) =>
      waitFor(
        `presence of ${room} = ${connections} connections, users ${users.join(',')}`,
        async () => {
          for (const gw of gateways.filter((g) => g.process.exitCode === null && g.process.signalCode === null)) {
            const p = (await presenceOf(gw, room)).body;
            if (p.connections !== connections || JSON.stringify(p.users) !== JSON.stringify(users)) return false;
          }
          return true;
        },
        bound,
      );

    before(async () => {
      const base = { PUBLISH_KEYS: KEY, JWT_SECRET: SECRET, ALLOW_ANONYMOUS: 'true', PUBLIC_ROOMS: 'lobby', PRESENCE_ROOMS: 'chat:* events, lobby, user:*', PRESENCE_TTL_SECONDS: String(TTL) };
      const started = await startBackend(backend, base);
      redis = started.redis;
      gateways.push(...started.gateways);
      // Later gateways of the Redis variant join the same Redis.
      env = redis ? { ...base, REDIS_URL: redis.url } : base;
    });
    after(async () => {
      for (const c of clients) c.close();
      await Promise.all(gateways.map((g) => g.stop()));
      await redis?.stop();
    });

    it('counts connections and lists users across replicas, with paging, from HTTP and from clients', async () => {
      const [a, b] = [gateways[0]!, gateways.at(-1)!];
      const alice1 = await as(a, 'alice');
      const alice2 = await as(b, 'alice');
      const bob = await as(b, 'bob');
      const anon = await as(a, undefined);
      for (const c of [alice1, alice2, bob]) await c.subscribe('chat:1');
      await anon.subscribe('lobby');
      await converge('chat:1', 3, ['alice', 'bob']);
      await converge('lobby', 1, []);
      await converge('user:alice', 2, ['alice']);

      const first = (await presenceOf(a, 'chat:1', '?limit=1')).body;
      assert.deepEqual(first, { room: 'chat:1', connections: 3, users: ['alice'], next: 'alice' });
      const second = (await presenceOf(b, 'chat:1', `?limit=1&cursor=${first.next}`)).body;
      assert.deepEqual(second, { room: 'chat:1', connections: 3, users: ['bob'] });

      const fromClient = (await bob.socket.timeout(5000).emitWithAck('presence', { room: 'chat:1' })) as any;
      assert.deepEqual(fromClient, { ok: true, room: 'chat:1', connections: 3, users: ['alice', 'bob'] });
      const refused = (await anon.socket.timeout(5000).emitWithAck('presence', 'chat:1')) as any;
      assert.deepEqual([refused.ok, refused.error.code], [false, 'forbidden'], 'only for rooms the client may subscribe to');
      assert.equal((await presenceOf(a, 'nopresence')).status, 404);

      alice1.close();
      await converge('chat:1', 2, ['alice', 'bob']);
      await alice2.unsubscribe('chat:1');
      await converge('chat:1', 1, ['bob']);
    });

    it('sends herald:join and herald:leave to members of rooms with events', async () => {
      const gw = gateways.at(-1)!;
      const dave = await as(gateways[0]!, 'dave');
      await dave.subscribe('chat:events');
      const carol = await as(gw, 'carol');
      const joined = onceWithin<[{ room: string; user: string; client: string }]>(dave.socket, 'herald:join', 'herald:join');
      await carol.subscribe('chat:events');
      const [join] = await joined;
      assert.deepEqual({ room: join.room, user: join.user }, { room: 'chat:events', user: 'carol' });
      assert.equal(join.client, carol.socket.id);
      const left = onceWithin<[{ room: string; user: string }]>(dave.socket, 'herald:leave', 'herald:leave');
      carol.close();
      const [leave] = await left;
      assert.deepEqual({ room: leave.room, user: leave.user }, { room: 'chat:events', user: 'carol' });
    });

    if (backend === 'redis') {
      it('rewrites its members after Redis restarts empty', async () => {
        const gina = await as(gateways[0]!, 'gina');
        await gina.subscribe('chat:outage');
        await converge('chat:outage', 1, ['gina']);
        await redis!.kill();
        await redis!.restart(); // no persistence: presence data is gone
        await converge('chat:outage', 1, ['gina']);
      });

      it(`forgets a killed replica within ${TTL} s and does not double-count one restarted under the same id`, async () => {
        const fixed = await startGateway({ env: { ...env, REPLICA_ID: 'presence-fixed' } });
        gateways.push(fixed);
        const erin = await as(fixed, 'erin');
        await erin.subscribe('chat:crash');
        await converge('chat:crash', 1, ['erin']);

        // Killed without cleanup: its members stop counting once its heartbeat key expires.
        fixed.signal('SIGKILL');
        await fixed.exited();
        await converge('chat:crash', 0, [], (TTL + 2) * 1000);

        // The same replica id back, with a member, then killed and restarted at once: the earlier
        // instance's member must not count next to the new one's.
        const again = await startGateway({ env: { ...env, REPLICA_ID: 'presence-fixed' } });
        gateways.push(again);
        const frank = await as(again, 'frank');
        await frank.subscribe('chat:crash');
        await converge('chat:crash', 1, ['frank']);
        again.signal('SIGKILL');
        await again.exited();
        const third = await startGateway({ env: { ...env, REPLICA_ID: 'presence-fixed' } });
        gateways.push(third);
        const frank2 = await as(third, 'frank');
        await frank2.subscribe('chat:crash');
        await converge('chat:crash', 1, ['frank']);
      });
    }
  });
}
