import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { startBlackhole, type BlackholeRelay } from './helpers/blackhole.js';
import { connectClient, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'partition-presence-key-0123456789';
const SECRET = 'partition-presence-secret-0123456789';
const JWT = 'partition-presence-jwt-0123456789-abcdef';
/** A replica's members drop out PRESENCE_TTL_SECONDS (3) after its last beat; its rooms end WEBHOOK_VACATE_DELAY_SECONDS (1) later. */
const WAIT = 30_000;

const token = (sub: string) =>
  new SignJWT({ sub, rooms: ['lobby:*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(new TextEncoder().encode(JWT));

/**
 * Presence and the webhooks' room transitions after a silent partition between one replica (B)
 * and Redis, while B keeps its clients (REDIS_OUTAGE_CLOSE_SECONDS=0, as a single replica would):
 * the other replica releases B's rooms and users once B's heartbeat expired, and after the heal
 * B's members are counted again and its rooms occupied again. Once with B's connections dropped
 * during the cut (REDIS_TIMEOUT_SECONDS below the cut) and once healed without a reset (above it:
 * the connections survive; B notices from its heartbeat key that it had been counted as gone).
 */
const cases = [
  { name: 'its connections dropped and re-dialled', timeout: '1', renewed: /^reconnected$/ },
  { name: 'healed without a reset', timeout: '30', renewed: /^heartbeat expired/ },
];

for (const c of cases) {
  describe(`presence and webhooks after a partition, ${c.name}`, () => {
    let redis: RedisProcess;
    let relay: BlackholeRelay;
    let receiver: Receiver;
    let a: Gateway;
    let b: Gateway;
    const clients: TestClient[] = [];

    before(async () => {
      redis = await startRedis();
      relay = await startBlackhole(redis.port);
      receiver = await startReceiver(SECRET);
      const env = {
        PUBLISH_KEYS: KEY,
        JWT_SECRET: JWT,
        PRESENCE_ROOMS: 'lobby:*',
        PRESENCE_TTL_SECONDS: '3',
        WEBHOOK_URL: receiver.url,
        WEBHOOK_SECRET: SECRET,
        WEBHOOK_VACATE_DELAY_SECONDS: '1',
        WEBHOOK_EVENTS: 'room.occupied,room.vacated,presence.joined,presence.left',
        REDIS_TIMEOUT_SECONDS: c.timeout,
        REDIS_OUTAGE_CLOSE_SECONDS: '0',
      };
      a = await startGateway({ env: { ...env, REDIS_URL: redis.url } });
      b = await startGateway({ env: { ...env, REDIS_URL: relay.url } });
    });
    after(async () => {
      for (const cl of clients) cl.close();
      await Promise.all([a?.stop(), b?.stop()]);
      await relay?.close();
      await receiver?.close();
      await redis?.stop();
    });

    const presence = async (g: Gateway, room: string) => {
      const res = await fetch(`${g.url}/v1/rooms/${room}/presence`, { headers: { authorization: `Bearer ${KEY}` } });
      return (await res.json()) as { connections: number; users: string[] };
    };
    const shows = (g: Gateway, room: string, users: string[]) =>
      waitFor(`${room} shows ${users.join(', ') || 'nobody'} through ${g.replicaId}`, async () => {
        const p = await presence(g, room);
        return p.connections === users.length && JSON.stringify(p.users) === JSON.stringify(users);
      }, WAIT);
    /** A room's distinct webhooks (retries repeat an id), in the order they happened. */
    const hooks = (room: string) =>
      [...new Map(receiver.hits.map((h) => [h.body.id as string, h.body as { type: string; ts: number; data: { room: string; user?: string } }])).values()]
        .filter((e) => e.data.room === room)
        .sort((x, y) => x.ts - y.ts)
        .map((e) => (e.data.user ? `${e.type} ${e.data.user}` : e.type));

    it('releases the silent replica\'s rooms after the TTL, and counts its members again within a heartbeat of the heal', async () => {
      const ua = await connectClient(a.url, { auth: { token: await token('ua') } });
      const ub = await connectClient(b.url, { auth: { token: await token('ub') } });
      clients.push(ua, ub);
      for (const [cl, rooms] of [[ua, ['lobby:ab']], [ub, ['lobby:ab', 'lobby:b']]] as const) {
        for (const room of rooms) assert.equal(((await cl.subscribe(room)) as { ok: boolean }).ok, true);
      }
      await shows(a, 'lobby:ab', ['ua', 'ub']);
      await shows(a, 'lobby:b', ['ub']);
      await waitFor('lobby:b occupied', () => hooks('lobby:b').includes('room.occupied'), WAIT);

      relay.cut();
      // The others count B as gone once its heartbeat expired, and release what it held.
      await shows(a, 'lobby:b', []);
      await shows(a, 'lobby:ab', ['ua']);
      await waitFor('lobby:b vacated', () => hooks('lobby:b').includes('room.vacated'), WAIT);
      await waitFor('ub left lobby:ab', () => hooks('lobby:ab').includes('presence.left ub'), WAIT);

      relay.heal();
      for (const g of [a, b]) {
        await shows(g, 'lobby:b', ['ub']);
        await shows(g, 'lobby:ab', ['ua', 'ub']);
      }
      await waitFor('lobby:b occupied again', () => hooks('lobby:b').filter((t) => t === 'room.occupied').length === 2, WAIT);
      await waitFor('ub joined lobby:ab again', () => hooks('lobby:ab').filter((t) => t === 'presence.joined ub').length === 2, WAIT);
      assert.deepEqual(hooks('lobby:b').filter((t) => t.startsWith('room.')), ['room.occupied', 'room.vacated', 'room.occupied']);
      assert.ok(!hooks('lobby:ab').includes('room.vacated'), 'A kept lobby:ab occupied throughout');
      assert.ok(ub.socket.connected, 'B kept its client (REDIS_OUTAGE_CLOSE_SECONDS=0)');
      const renewed = b.logs.filter((l) => l.msg.startsWith('heartbeat renewed')).map((l) => String(l.why));
      assert.ok(renewed.length > 0 && renewed.every((why) => c.renewed.test(why)), `B renewed its heartbeat: ${renewed.join('; ')}`);
    });
  });
}
