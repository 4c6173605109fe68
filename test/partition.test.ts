import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startReceiver, type Receiver } from './helpers/receiver.js';
import { startBlackhole, type BlackholeRelay } from './helpers/blackhole.js';
import { follow, type Follower } from './helpers/followers.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startHaproxy, type Haproxy } from './helpers/haproxy.js';
import { freePort } from './helpers/ports.js';
import { post, publishLoop } from './helpers/publisher.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'partition-test-key-0123456789';
const SECRET = 'partition-webhook-secret-0123456789';
const H = 'feed:h';
const P = 'plain:p';
/** REDIS_TIMEOUT_SECONDS of both replicas: a dead link is dropped within 2 s. */
const TIMEOUT_S = 2;
/** A publish that has not answered by then hangs (the bound is REDIS_TIMEOUT_SECONDS). */
const HANG_MS = TIMEOUT_S * 1000 + 3000;
const WAIT = 30_000;

type Cut = 'every link' | 'the subscriber link' | 'the publisher link';
const CUTS: Record<Cut, (name: string) => boolean> = {
  'every link': () => true,
  'the subscriber link': (name) => name.endsWith(':sub'),
  'the publisher link': (name) => name.endsWith(':pub'),
};

/**
 * A replica (B) cut off from Redis by a silent partition, beside a healthy one (A), behind
 * HAProxy (the compose file's config, which routes by `/readyz`). B reaches Redis through a relay
 * that drops nothing and closes nothing, it just stops forwarding (and holds new connections):
 * TCP sees nothing wrong. Clients on both replicas follow a history room and a plain room while
 * a publisher posts to both.
 */
const cases: { transport: 'uws' | 'node'; cuts: Cut[] }[] = [
  { transport: 'uws', cuts: ['every link', 'the subscriber link', 'the publisher link'] },
  { transport: 'node', cuts: ['every link'] },
];

for (const { transport, cuts } of cases) {
  describe(`a replica cut off from Redis by a silent partition (TRANSPORT=${transport})`, () => {
    let redis: RedisProcess;
    let relay: BlackholeRelay;
    let a: Gateway;
    let b: Gateway;
    let lb: Haproxy;
    let receiver: Receiver;
    const followers: Follower[] = [];

    before(async () => {
      redis = await startRedis();
      receiver = await startReceiver(SECRET);
      relay = await startBlackhole(redis.port);
      const env = {
        TRANSPORT: transport,
        PUBLISH_KEYS: KEY,
        HISTORY_ROOMS: 'feed:*',
        PRESENCE_ROOMS: 'feed:*',
        PRESENCE_TTL_SECONDS: '3',
        REDIS_TIMEOUT_SECONDS: String(TIMEOUT_S),
        REDIS_OUTAGE_CLOSE_SECONDS: '2',
        DRAIN_SECONDS: '1',
        WEBHOOK_URL: receiver.url,
        WEBHOOK_SECRET: SECRET,
      };
      a = await startGateway({ env: { ...env, REDIS_URL: redis.url, PORT: String(await freePort()) } });
      b = await startGateway({ env: { ...env, REDIS_URL: relay.url, PORT: String(await freePort()) } });
      lb = await startHaproxy([
        { name: 'A', port: a.port },
        { name: 'B', port: b.port },
      ]);
    });
    after(async () => {
      for (const f of followers) f.close();
      await lb?.stop();
      await Promise.all([a?.stop(), b?.stop()]);
      await relay?.close();
      await redis?.stop();
      await receiver?.close();
    });

    /**
     * A follower that HAProxy sent to `g`. HAProxy balances by open connections, so one that went
     * to the other replica stays open until this one is placed.
     */
    const on = async (g: Gateway, rooms: string[], kind: Follower['kind']): Promise<Follower> => {
      const elsewhere: Follower[] = [];
      try {
        for (let i = 0; i < 20; i++) {
          const f = await follow(lb.url, rooms, kind);
          if (f.replicas[0] === g.replicaId) {
            followers.push(f);
            return f;
          }
          elsewhere.push(f);
        }
      } finally {
        for (const f of elsewhere) f.close();
      }
      throw new Error(`HAProxy never sent a client to ${g.replicaId}`);
    };

    for (const cut of cuts) {
      it(`cutting ${cut}: B notices, its clients move to A and lose no history message, no publish hangs, a retried publish is not duplicated, presence is right after the heal`, async () => {
        await lb.waitForStatus('B', 'UP');
        // Rooms of this test alone: its history is read back whole.
        const tag = `${transport}-${cut.replaceAll(' ', '-')}`;
        const [H, P] = [`feed:${tag}`, `plain:${tag}`];
        const onA = await on(a, [H, P], 'since');
        const zero = await on(b, [H], 'zero-code');
        const since = await on(b, [H, P], 'since');
        const mixed = await on(b, [H, P], 'zero-code');
        const reconnected = await on(b, [H], 'zero-code');
        const history = [onA, zero, since, reconnected];

        const pub = publishLoop({ A: a.url, B: b.url }, KEY, [H, P], HANG_MS);
        try {
          await waitFor('every follower receives history', () => history.every((f) => f.got[H]!.length >= 5), WAIT);
          // B saves a session and lets go of the journal entries Redis now has: the portable
          // offsets written later must still know what its other clients were sent.
          await pub.pause();
          await waitFor('every follower has every acknowledged message', () => history.every((f) => f.got[H]!.length === pub.acked(H).length), WAIT);
          reconnected.socket.io.engine.close();
          await waitFor('a client of B recovered its session', () => reconnected.recovered.length === 1 && reconnected.replicas.length === 2, WAIT);
          assert.deepEqual(reconnected.recovered, [true]);

          // (Its reconnect went through HAProxy, to either replica.)
          const fromB = [zero, since, mixed, reconnected].filter((f) => f.replicas.at(-1) === b.replicaId);
          const [retriedKey, lateKey] = [`retried-${tag}`, `late-${tag}`];
          relay.cut(CUTS[cut]);
          // Sent on a link that is already dead: no answer within the bound (503, the outcome
          // unknown). The writes wait in the relay and reach Redis when the path heals. One is
          // retried on A at once, the other only after the heal, once it has been published.
          const [first, late] = await Promise.all([retriedKey, lateKey].map((k) => post(b.url, KEY, { room: H, event: 'm', data: k }, HANG_MS, k)));
          const retried = await post(a.url, KEY, { room: H, event: 'm', data: retriedKey }, HANG_MS, retriedKey);
          assert.equal(retried.status, 200, JSON.stringify(retried.body));
          for (const r of [first!, late!]) {
            if (cut === 'the subscriber link') assert.equal(r.status, 200, 'B publishes while only its subscriber is cut');
            else assert.deepEqual([r.status, r.body?.error?.code], [503, 'publish_timeout'], 'answered within the bound (status 0: no answer)');
          }
          pub.resume();

          const unready = await waitFor('B /readyz 503', async () => {
            const r = await json(`${b.url}/readyz`);
            return r.status === 503 ? r : undefined;
          }, WAIT);
          assert.deepEqual([unready.body.status, unready.body.redis], ['redis_unavailable', 'down']);
          assert.match(await metrics(b.url), /^herald_redis_up 0$/m);
          await b.waitForLog('one warning with the cause', (l) => l.msg.startsWith('redis unreachable;') && /Socket timeout/.test(String(l.cause)));

          await waitFor('B closed its clients, which reconnected to A', () => fromB.every((f) => f.socket.connected && f.replicas.at(-1) === a.replicaId), WAIT);
          for (const f of fromB) assert.ok(f.disconnects.some((d) => d.code === 'redis_unreachable'), 'told why, with herald:disconnect');
          assert.equal(zero.recovered.at(-1), true, 'a history room alone: recovered on A from the offset B sent last');
          assert.equal(mixed.recovered.at(-1), false, 'a room without history: not recovered (its messages meanwhile are gone)');

          relay.heal();
          await waitFor('B ready again', async () => (await json(`${b.url}/readyz`)).status === 200, WAIT);
          await b.waitForLog('one line when it is back', (l) => l.msg.startsWith('redis reachable again'));
          await pub.pause();

          // The late write reached Redis after the heal and was published then; its retry is answered with its id.
          const entries = async () => (await json(`${a.url}/v1/rooms/${H}/history?limit=1000`, KEY)).body.entries as { id: string; data: string }[];
          const committed = await waitFor('the late write published after the heal', async () => (await entries()).find((e) => e.data === lateKey), WAIT);
          const again = await post(a.url, KEY, { room: H, event: 'm', data: lateKey }, HANG_MS, lateKey);
          assert.deepEqual([again.status, again.body.ids[H], again.body.duplicate], [200, committed.id, true]);
          const stored = await entries();
          for (const k of [retriedKey, lateKey]) assert.equal(stored.filter((e) => e.data === k).length, 1, `${k}: published once`);

          // Every acknowledged history message once, in order, wherever the client was (and one
          // whose answer was lost with the cut but that Redis got, like any other).
          const expected = pub.expected(H, stored, [retriedKey, lateKey]);
          for (const id of [...pub.acked(H), retried.body.ids[H] as string, committed.id]) assert.ok(expected.includes(id), `acknowledged ${id} is in the history`);
          await waitFor('every follower has every acknowledged history message', () => history.every((f) => f.got[H]!.length >= expected.length), WAIT);
          for (const f of history) assert.deepEqual(f.got[H], expected, `${f.kind} client on ${f.replicas.join(' → ')}: every message once, in order`);

          const hangs = pub.attempts.filter((x) => x.status === 0);
          assert.deepEqual(hangs, [], 'no publish hung');
          const refused = pub.attempts.filter((x) => x.status !== 200);
          for (const x of refused) assert.ok(['publish_timeout', 'unavailable'].includes(x.body.error.code), JSON.stringify(x));

          // A plain-room message B answered 200 for is delivered or counted as lost.
          const plainOnA = new Set(onA.got[P]);
          for (const id of pub.acked(P, 'A')) assert.ok(plainOnA.has(id), 'A\'s plain publishes all reach A\'s client');
          const lost = pub.acked(P, 'B').filter((id) => !plainOnA.has(id)).length;
          const counted = (await json(`${b.url}/readyz`)).body.busPublishFailures as number;
          assert.ok(lost <= counted, `${lost} plain messages from B did not reach A; B counted ${counted}`);

          // Presence: everyone is on A now; nobody left over on B, whichever replica answers.
          const connected = followers.filter((f) => f.socket.connected && f.rooms.includes(H)).length;
          for (const g of [a, b]) {
            await waitFor(`presence through ${g.replicaId}`, async () => (await json(`${g.url}/v1/rooms/${H}/presence`, KEY)).body.connections === connected, WAIT);
          }
          console.log(`# ${transport}, ${cut}: ${expected.length} history messages, ${refused.length} publishes refused by B while it was cut off, ${lost} plain messages lost and counted`);
        } finally {
          await pub.stop();
          for (const f of followers.splice(0)) f.close();
        }
      });
    }

    if (transport === 'uws') {
      it('a backend unsubscribe B could not hear is not undone when its client recovers on A (no session saved: a portable offset)', async () => {
        await lb.waitForStatus('B', 'UP');
        const other = `${H}-other`;
        const zero = await on(b, [H, other], 'zero-code');
        const first = await post(a.url, KEY, { room: other, event: 'm', data: 'before' }, HANG_MS);
        await waitFor('delivered on B', () => zero.got[other]!.includes(first.body.ids[other]), WAIT);
        relay.cut();
        // Sent through A while B hears nothing: no open connection or waiting session to reach.
        const res = await fetch(`${a.url}/v1/unsubscribe`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client: zero.socket.id, room: other }) });
        assert.equal(res.status, 200, await res.clone().text());
        await waitFor('B closed its client, which recovered on A', () => zero.disconnects.some((d) => d.code === 'redis_unreachable') && zero.replicas.at(-1) === a.replicaId && zero.recovered.length > 0, WAIT);
        assert.equal(zero.recovered.at(-1), true, 'its other history room came back whole');
        const skipped = await post(a.url, KEY, { room: other, event: 'm', data: 'after the unsubscribe' }, HANG_MS);
        const kept = await post(a.url, KEY, { room: H, event: 'm', data: 'after the unsubscribe' }, HANG_MS);
        await waitFor('the room it kept, live', () => zero.got[H]!.includes(kept.body.ids[H]), WAIT);
        assert.ok(!zero.got[other]!.includes(skipped.body.ids[other]), 'the room the backend took it out of did not come back');
        relay.heal();
        await lb.waitForStatus('B', 'UP');
        zero.close();
      });

      it('drains while cut off: exits 0 within its bound, says what it could not save, its clients recover on A', async () => {
        await lb.waitForStatus('B', 'UP');
        const zero = await on(b, [H], 'zero-code');
        const onA = await on(a, [H, P], 'since');
        await post(a.url, KEY, { room: H, event: 'm', data: 'before' }, HANG_MS);
        await waitFor('delivered', () => zero.got[H]!.length > 0 && onA.got[H]!.length > 0, WAIT);
        relay.cut();
        b.signal('SIGTERM');
        await b.waitForLog('draining', (l) => l.msg === 'draining');
        // The HTTP API answers during the drain; this one cannot reach A's client: it must be counted.
        const plain = await post(b.url, KEY, { room: P, event: 'm', data: 'plain during the drain' }, HANG_MS);
        assert.equal(plain.status, 200);
        const after = await post(a.url, KEY, { room: H, event: 'm', data: 'during the drain' }, HANG_MS);
        assert.equal(after.status, 200);
        assert.equal(await b.exited(), 0);
        const summary = await b.waitForLog('what could not be saved', (l) => l.msg.startsWith('drained without everything reaching Redis'));
        assert.ok((summary.sessionsNotSaved as number) >= 1, 'the session of its client could not be saved');
        assert.ok(!onA.got[P]!.includes(plain.body.ids[P]) && (summary.broadcastsLost as number) >= 1, 'the plain message that never reached A is counted');
        await waitFor('the drained client is on A with everything', () => zero.replicas.at(-1) === a.replicaId && zero.got[H]!.includes(after.body.ids[H]), WAIT);
        assert.deepEqual(zero.got[H], onA.got[H], 'once, in order');
        assert.equal(zero.recovered.at(-1), true);
        relay.heal();
      });
    }
  });
}

async function json(url: string, key?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  return { status: res.status, body: await res.json() };
}

async function metrics(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } });
  return res.text();
}
