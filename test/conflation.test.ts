import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { io } from 'socket.io-client';
import { HeraldClient } from '../client/src/index.js';
import { compareIds } from '../src/protocol/ids.js';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { startRelay, type Relay } from './helpers/relay.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'conflation-key-0123456789';
/** Two conflated score rooms (one with history and `last=1`, one without), one plain room. */
const SCORES = ['score:match-1', 'score:match-2'];
const PLAIN = 'news:main';
const BOUND = 256 * 1024;
/** Scores large enough to fill the kernel's buffers in a few hundred publishes. */
const PAD = 's'.repeat(16 * 1024);
/** Upper bound on score publishes while the slow client does not read. */
const MAX_PUBLISHES = 3000;
/** Replaced messages to see before the client reads again. */
const CONFLATED = 20;

interface Score {
  room: string;
  n: number;
}

/**
 * Clients that stop reading, on WebSocket and on long-polling (a relay in front of the replica stops reading what it sends) while
 * scores are published into two conflated rooms (CONFLATE_ROOMS) and news into a plain room; then
 * reads again. Its queue passes half of SLOW_CLIENT_MAX_BYTES and stays there: it holds one
 * score per conflated room (the newest, the older ones replaced and counted), is not closed,
 * and once it drains it has the newest score of each room, every news message in order, scores
 * in order, and offsets that only go forward. A client that reads all along gets everything.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`conflation for a client that stops reading (TRANSPORT=${transport})`, () => {
    let gw: Gateway;
    let relay: Relay;
    const slows: { name: string; client: TestClient; offsets: string[]; disconnected: boolean }[] = [];
    let healthy: TestClient;

    before(async () => {
      gw = await startGateway({
        env: {
          TRANSPORT: transport,
          PUBLISH_KEYS: KEY,
          HISTORY_ROOMS: 'score:match-1 last=1',
          CONFLATE_ROOMS: 'score:*',
          SLOW_CLIENT_MAX_BYTES: String(BOUND),
        },
      });
      relay = await startRelay(gw.port);
    });
    after(async () => {
      for (const s of slows) s.client.close();
      healthy?.close();
      await relay?.close();
      await gw?.stop();
    });

    it('holds the newest score per conflated room, writes it on drain, and never closes the client for them', async () => {
      for (const t of ['websocket', 'polling'] as const) {
        const s = { name: t, client: await connectClient(relay.url, { transport: t }), offsets: [] as string[], disconnected: false };
        s.client.socket.onAny((...args: unknown[]) => {
          const last = args.at(-1);
          if (args.length === 4 && typeof last === 'string') s.offsets.push(last);
        });
        s.client.socket.on('disconnect', () => (s.disconnected = true));
        slows.push(s);
      }
      healthy = await connectClient(gw.url);
      for (const c of [...slows.map((s) => s.client), healthy]) {
        for (const room of [...SCORES, PLAIN]) assert.equal((await c.subscribe(room) as { ok: boolean }).ok, true, room);
      }
      const stats = async () => (await getJson(`${gw.url}/readyz`)).body as { conflatedMessages: number; conflationHeld: number; slowConsumerDisconnects: number };

      const published: Score[] = [];
      let news = 0;
      let numbered = 0;
      const score = async (room: string) => {
        const n = ++numbered;
        const r = await publish(gw.url, { room, event: 'score', data: { n, pad: PAD } }, KEY);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        published.push({ room, n });
      };
      const newsItem = async () => {
        const r = await publish(gw.url, { room: PLAIN, event: 'news', data: { k: ++news } }, KEY);
        assert.equal(r.status, 200, JSON.stringify(r.body));
      };

      relay.hold();
      // Until every slow connection holds (each fills its kernel's buffers first), and some scores were replaced.
      let seen = { conflatedMessages: 0, conflationHeld: 0 };
      const holding = SCORES.length * slows.length;
      for (let i = 0; i < MAX_PUBLISHES && (seen.conflatedMessages < CONFLATED || seen.conflationHeld < holding); i++) {
        // Both rooms and the news at once: several land in one uWS batch (BROADCAST_BATCH_MS).
        await Promise.all([score(SCORES[0]!), score(SCORES[1]!), ...(i % 5 === 0 ? [newsItem()] : [])]);
        if (i % 20 === 19) seen = await stats();
      }
      assert.ok(seen.conflatedMessages >= CONFLATED, `scores were conflated while the clients did not read (${seen.conflatedMessages} after ${published.length} publishes)`);
      // Some more of both, then the newest score of each room.
      for (let i = 0; i < 10; i++) await newsItem();
      for (const room of SCORES) await score(room);
      const held = await stats();
      assert.equal(held.conflationHeld, holding, 'one held score per slow connection and conflated room, no more');
      assert.equal(held.slowConsumerDisconnects, 0, 'not closed for the conflated rooms\' traffic');
      assert.ok(held.conflatedMessages >= CONFLATED);

      relay.release();
      const newest = SCORES.map((room) => published.findLast((p) => p.room === room)!.n);
      const scoresOf = (c: TestClient, room: string) => c.received.filter((r) => r.meta?.room === room && r.event === 'score').map((r) => (r.data as { n: number }).n);
      await waitFor('the slow clients have the newest score of each room and every news message', () =>
        slows.every(({ client }) => SCORES.every((room, i) => scoresOf(client, room).at(-1) === newest[i]) && client.received.filter((r) => r.event === 'news').length === news),
      );
      await waitFor('nothing held once drained', async () => (await stats()).conflationHeld === 0);

      for (const { name, client: slow, offsets, disconnected } of slows) {
        for (const [i, room] of SCORES.entries()) {
          const got = scoresOf(slow, room);
          const sent = published.filter((p) => p.room === room).map((p) => p.n);
          assert.deepEqual(got, [...got].sort((a, b) => a - b), `${name}, ${room}: in order`);
          assert.equal(new Set(got).size, got.length, `${name}, ${room}: no duplicate`);
          assert.ok(got.length < sent.length, `${name}, ${room}: ${sent.length - got.length} older scores replaced, not queued`);
          assert.equal(got.at(-1), newest[i]);
        }
        // The history room's ids go forward; `since` the last one would resume after the newest.
        const ids = slow.received.filter((r) => r.meta?.room === SCORES[0]).map((r) => r.meta.id!);
        assert.ok(ids.every((id, i) => i === 0 || compareIds(ids[i - 1]!, id) < 0), `${name}: history ids go forward`);
        assert.deepEqual(slow.received.filter((r) => r.event === 'news').map((r) => (r.data as { k: number }).k), Array.from({ length: news }, (_, i) => i + 1), `${name}: every news message, in order`);
        // A held score went out with an offset of its own: the client's last offset says what it got.
        const seqs = offsets.map((o) => Number(o.slice(o.indexOf('.') + 1)));
        assert.ok(seqs.length > 0 && seqs.every((s, i) => i === 0 || seqs[i - 1]! < s), `${name}: offsets go forward (${seqs.length} seen)`);
        assert.equal(disconnected, false, `${name}: the slow client stayed connected`);
        assert.equal(slow.socket.connected, true);
      }
      // herald_messages_delivered_total counts what was written, held scores when they were: not the replaced ones.
      const delivered = ((await getJson(`${gw.url}/readyz`)).body as { delivered: number }).delivered;
      assert.equal(delivered, healthy.received.length + slows.reduce((a, s) => a + s.client.received.length, 0), 'delivered = what the clients received');
      for (const room of SCORES) assert.deepEqual(scoresOf(healthy, room), published.filter((p) => p.room === room).map((p) => p.n), `${room}: the reading client got every score`);
      assert.deepEqual(healthy.received.filter((r) => r.event === 'news').map((r) => (r.data as { k: number }).k), Array.from({ length: news }, (_, i) => i + 1));
      assert.equal((await stats()).slowConsumerDisconnects, 0);
      console.log(`# ${transport}: ${published.length} scores of ${PAD.length} B, ${(await stats()).conflatedMessages} conflated; ${slows.map(({ name, client }) => `${name} got ${SCORES.map((r) => scoresOf(client, r).length).join(' + ')}`).join(', ')}`);
    });

    it('does not claim a held room on connection recovery: the client is told, and takes the newest again', async () => {
      const room = SCORES[0]!;
      // The first test's slow clients are gone first: this one alone is behind the relay.
      for (const s of slows) s.client.close();
      await waitFor('only the reading client left', async () => (await getJson(`${gw.url}/readyz`)).body.connections === 1);
      const client = await connectClient(relay.url, { reconnection: true });
      assert.equal((await client.subscribe(room) as { ok: boolean }).ok, true);
      const stats = async () => (await getJson(`${gw.url}/readyz`)).body as { conflationHeld: number; slowConsumerDisconnects: number };
      const heldBefore = (await stats()).conflationHeld;
      let n = 10_000;
      relay.hold();
      for (let i = 0; i < MAX_PUBLISHES && (i % 10 !== 9 || (await stats()).conflationHeld === heldBefore); i++) {
        const r = await publish(gw.url, { room, event: 'score', data: { n: ++n, pad: PAD } }, KEY);
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
      assert.equal((await stats()).conflationHeld, heldBefore + 1, 'it holds a score');
      // Its connection drops while it holds one (a network cut), then it reads again.
      const connects: boolean[] = [];
      client.socket.on('connect', () => connects.push(client.socket.recovered));
      assert.ok(relay.resetAll() >= 1);
      relay.release();
      await waitFor('the client reconnected', () => connects.length > 0);
      assert.equal(connects[0], false, 'recovery does not claim the room where a score was held and skipped');
      await waitFor('what it held is dropped with its connection', async () => (await stats()).conflationHeld === heldBefore);
      // The score page's contract (docs/guides/live-scores.md): not recovered, take the newest again.
      assert.equal((await client.subscribe({ room, last: 1 }) as { ok: boolean }).ok, true);
      await client.waitFor('the newest score', (r) => r.meta?.room === room && (r.data as { n: number }).n === n);
      assert.equal((await stats()).slowConsumerDisconnects, 0);
      client.close();
    });

    it('a recovered client that subscribes again with since while it holds a score gets that score', async () => {
      const room = SCORES[0]!;
      const client = await connectClient(relay.url, { reconnection: true });
      assert.equal((await client.subscribe(room) as { ok: boolean }).ok, true);
      const stats = async () => (await getJson(`${gw.url}/readyz`)).body as { conflationHeld: number };
      let n = 20_000;
      const score = async () => {
        const r = await publish(gw.url, { room, event: 'score', data: { n: ++n, pad: PAD } }, KEY);
        assert.equal(r.status, 200, JSON.stringify(r.body));
      };
      await score();
      await client.waitFor('a first score', (r) => (r.data as { n: number }).n === n);
      // Dropped and restored whole (connection recovery): herald knows its position from the journal.
      const connects: boolean[] = [];
      client.socket.on('connect', () => connects.push(client.socket.recovered));
      relay.resetAll();
      await waitFor('the client reconnected', () => connects.length > 0);
      assert.equal(connects[0], true, 'restored whole');
      relay.hold();
      for (let i = 0; i < MAX_PUBLISHES && (i % 10 !== 9 || (await stats()).conflationHeld === 0); i++) await score();
      assert.equal((await stats()).conflationHeld, 1, 'it holds a score');
      // The explicit contract's client subscribes again with its last id (its ack comes once it reads again).
      const since = client.received.filter((r) => r.meta?.room === room).at(-1)!.meta.id;
      const ack = client.socket.timeout(20_000).emitWithAck('subscribe', { room, since });
      await waitFor('the held score dropped by the new subscribe', async () => (await stats()).conflationHeld === 0);
      relay.release();
      assert.equal((await ack as { ok: boolean }).ok, true);
      await client.waitFor('the newest score', (r) => r.meta?.room === room && (r.data as { n: number }).n === n);
      client.close();
    });
  });
}

/** Score publishes per conflated room at the live-score pace (10/s), once the slow clients hold. */
const PACED = 30;
const PACE_MS = 100;

/**
 * Across two replicas + Redis: the slow clients (WebSocket and long-polling, behind a relay that
 * stops reading) are on replica A, the scores are published through replica B, so every score
 * reaches A through Redis. Once they hold (the publishes go flat out until their queues pass
 * half the bound), scores go on at 10 per second per room: each slow connection holds exactly
 * one score per conflated room the whole time, is never closed, and once it reads again has the
 * newest. Reading subscribers on both replicas get every message, in order.
 */
const ACROSS = [
  { transport: 'uws', mode: 'classic' },
  { transport: 'node', mode: 'classic' },
  { transport: 'uws', mode: 'sharded' },
] as const;

for (const { transport, mode } of ACROSS) {
  describe(`conflation across two replicas + Redis (${mode}), TRANSPORT=${transport}`, () => {
    let redis: RedisProcess;
    let a: Gateway;
    let b: Gateway;
    let relay: Relay;
    const clients: TestClient[] = [];

    before(async () => {
      redis = await startRedis();
      const env = {
        TRANSPORT: transport,
        REDIS_MODE: mode,
        REDIS_URL: redis.url,
        PUBLISH_KEYS: KEY,
        HISTORY_ROOMS: 'score:match-1 last=1',
        CONFLATE_ROOMS: 'score:*',
        SLOW_CLIENT_MAX_BYTES: String(BOUND),
      };
      [a, b] = (await Promise.all([startGateway({ env }), startGateway({ env })])) as [Gateway, Gateway];
      for (const g of [a, b]) await waitFor(`${g.replicaId} ready`, async () => (await getJson(`${g.url}/readyz`)).status === 200);
      relay = await startRelay(a.port);
    });
    after(async () => {
      for (const c of clients) c.close();
      await relay?.close();
      await Promise.all([a?.stop(), b?.stop()]);
      await redis?.stop();
    });

    it('a slow client on one replica holds one score per room while scores come through the other at 10/s, and gets the newest', async () => {
      const slows: { name: string; client: TestClient; disconnected: boolean }[] = [];
      for (const t of ['websocket', 'polling'] as const) {
        const s = { name: t, client: await connectClient(relay.url, { transport: t }), disconnected: false };
        s.client.socket.on('disconnect', () => (s.disconnected = true));
        assert.equal(s.client.replica, a.replicaId);
        slows.push(s);
        clients.push(s.client);
      }
      const healthy = [await connectClient(a.url), await connectClient(b.url, { transport: 'polling' }), await connectClient(b.url)];
      clients.push(...healthy);
      for (const c of clients) {
        for (const room of [...SCORES, PLAIN]) assert.equal((await c.subscribe(room) as { ok: boolean }).ok, true, room);
      }
      const stats = async () => (await getJson(`${a.url}/readyz`)).body as { conflatedMessages: number; conflationHeld: number; slowConsumerDisconnects: number };

      const published: Score[] = [];
      let news = 0;
      let numbered = 0;
      const score = async (room: string) => {
        const n = ++numbered;
        const r = await publish(b.url, { room, event: 'score', data: { n, pad: PAD } }, KEY);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        published.push({ room, n });
      };
      const newsItem = async () => {
        const r = await publish(b.url, { room: PLAIN, event: 'news', data: { k: ++news } }, KEY);
        assert.equal(r.status, 200, JSON.stringify(r.body));
      };

      relay.hold();
      // Flat out until each slow connection holds a score of each room (its queue passed half the bound).
      const holding = SCORES.length * slows.length;
      let seen = await stats();
      for (let i = 0; i < MAX_PUBLISHES && seen.conflationHeld < holding; i++) {
        await Promise.all([score(SCORES[0]!), score(SCORES[1]!), ...(i % 5 === 0 ? [newsItem()] : [])]);
        if (i % 10 === 9) seen = await stats();
      }
      assert.equal(seen.conflationHeld, holding, `every slow connection holds a score of each room (after ${published.length} publishes)`);
      const conflatedBefore = seen.conflatedMessages;
      // Then the live pace: 10 scores a second in each room, a news item a second.
      for (let i = 0; i < PACED; i++) {
        const tick = delay(PACE_MS);
        await Promise.all([score(SCORES[0]!), score(SCORES[1]!), ...(i % 10 === 0 ? [newsItem()] : [])]);
        const now = await stats();
        assert.equal(now.conflationHeld, holding, `tick ${i}: one held score per slow connection and room, no more`);
        assert.equal(now.slowConsumerDisconnects, 0, `tick ${i}: not closed for the conflated rooms' traffic`);
        await tick;
      }
      const held = await stats();
      // Every paced score replaced the one before it on each slow connection.
      assert.ok(held.conflatedMessages - conflatedBefore >= PACED * holding, `${held.conflatedMessages - conflatedBefore} replaced while paced`);

      relay.release();
      const newest = SCORES.map((room) => published.findLast((p) => p.room === room)!.n);
      const scoresOf = (c: TestClient, room: string) => c.received.filter((r) => r.meta?.room === room && r.event === 'score').map((r) => (r.data as { n: number }).n);
      const newsOf = (c: TestClient) => c.received.filter((r) => r.event === 'news').map((r) => (r.data as { k: number }).k);
      await waitFor('the slow clients have the newest score of each room and every news item', () =>
        slows.every(({ client }) => SCORES.every((room, i) => scoresOf(client, room).at(-1) === newest[i]) && newsOf(client).length === news),
      );
      await waitFor('nothing held once drained', async () => (await stats()).conflationHeld === 0);
      const everyNews = Array.from({ length: news }, (_, i) => i + 1);
      for (const { name, client, disconnected } of slows) {
        for (const [i, room] of SCORES.entries()) {
          const got = scoresOf(client, room);
          assert.deepEqual(got, [...got].sort((x, y) => x - y), `${name}, ${room}: in order`);
          assert.equal(new Set(got).size, got.length, `${name}, ${room}: no duplicate`);
          assert.ok(got.length + PACED <= published.filter((p) => p.room === room).length, `${name}, ${room}: the paced scores were replaced, not queued`);
          assert.equal(got.at(-1), newest[i]);
        }
        assert.deepEqual(newsOf(client), everyNews, `${name}: every news item, in order`);
        assert.equal(disconnected, false, `${name}: stayed connected`);
        assert.equal(client.socket.connected, true);
      }
      for (const [i, c] of healthy.entries()) {
        await waitFor(`reading client ${i} has everything`, () => SCORES.every((room, j) => scoresOf(c, room).at(-1) === newest[j]) && newsOf(c).length === news);
        for (const room of SCORES) assert.deepEqual(scoresOf(c, room), published.filter((p) => p.room === room).map((p) => p.n), `reading client ${i} on ${c.replica}, ${room}: every score in order`);
        assert.deepEqual(newsOf(c), everyNews);
      }
      for (const g of [a, b]) assert.equal(((await getJson(`${g.url}/readyz`)).body as { slowConsumerDisconnects: number }).slowConsumerDisconnects, 0);
      console.log(`# ${transport}/${mode}: ${published.length} scores through B (${PACED} per room at 10/s), ${held.conflatedMessages} conflated on A; slow ${slows.map(({ name, client }) => `${name} got ${SCORES.map((r) => scoresOf(client, r).length).join(' + ')}`).join(', ')}`);
    });
  });
}

/**
 * A room that is both a delta room (HISTORY_ROOMS ` delta`) and conflated: a delta subscriber
 * that stops reading is held the newest message like any other, and what it is written when it
 * drains is never a delta on a message it did not receive (the ones in between were replaced):
 * the held message goes whole, and deltas start again after it. A bare socket.io-client checks
 * every base on the wire; the client module ends with the newest payload and never had to refuse
 * a delta.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`a conflated delta room, a delta subscriber that stops reading (TRANSPORT=${transport})`, () => {
    let gw: Gateway;
    let relay: Relay;
    const closers: (() => void)[] = [];

    before(async () => {
      gw = await startGateway({
        env: { TRANSPORT: transport, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'score:* size=2000 delta', CONFLATE_ROOMS: 'score:*', SLOW_CLIENT_MAX_BYTES: String(BOUND) },
      });
      relay = await startRelay(gw.port);
    });
    after(async () => {
      for (const close of closers) close();
      await relay?.close();
      await gw?.stop();
    });

    it('writes the held message whole, then deltas on it: never a delta on a message it did not receive', async () => {
      const room = 'score:delta-1';
      const bare = await connectClient(relay.url);
      closers.push(() => bare.close());
      let bareClosed = false;
      bare.socket.on('disconnect', () => (bareClosed = true));
      assert.equal((await bare.subscribe({ room, delta: 'fossil' }) as { ok: boolean }).ok, true);
      const modules = [relay.url, gw.url].map((url) => {
        const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
        closers.push(() => socket.close());
        const herald = new HeraldClient(socket);
        const got: { n: number; id: string }[] = [];
        herald.on('score', (data, meta) => got.push({ n: (data as { n: number }).n, id: meta.id }));
        return { herald, got };
      });
      for (const m of modules) await m.herald.subscribe(room, { delta: 'fossil' });
      const stats = async () => (await getJson(`${gw.url}/readyz`)).body as { conflatedMessages: number; conflationHeld: number; slowConsumerDisconnects: number };

      // Half of each payload stays, half changes: deltas of about 11 KB, whole messages of about 27 KB.
      const fixed = 'f'.repeat(16 * 1024);
      const published: { n: number; id: string }[] = [];
      const publishOne = async () => {
        const n = published.length;
        const r = await publish(gw.url, { room, event: 'score', data: { n, fixed, changing: randomBytes(8 * 1024).toString('base64') } }, KEY);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        published.push({ n, id: r.body.ids[room] as string });
      };
      for (let i = 0; i < 5; i++) await publishOne();
      await waitFor('deltas before the hold', () => bare.received.filter((r) => (r.meta as { base?: string }).base).length >= 3);
      relay.hold();
      let seen = await stats();
      for (let i = 0; i < MAX_PUBLISHES && (seen.conflationHeld < 2 || seen.conflatedMessages < CONFLATED); i++) {
        await publishOne();
        if (i % 10 === 9) seen = await stats();
      }
      assert.equal(seen.conflationHeld, 2, `both slow connections hold a message (after ${published.length} publishes)`);
      assert.equal(seen.slowConsumerDisconnects, 0);
      relay.release();
      const newest = published.at(-1)!;
      await waitFor('the slow clients have the newest message', () => bare.received.at(-1)?.meta.id === newest.id && modules[0]!.got.at(-1)?.id === newest.id).catch((err: Error) =>
        assert.fail(`${err.message}: bare at ${bare.received.at(-1)?.meta.id}, module at ${modules[0]!.got.at(-1)?.id}, newest ${newest.id}`),
      );
      // Deltas again after the held message.
      for (let i = 0; i < 5; i++) await publishOne();
      await waitFor('everyone has the last message', () => bare.received.at(-1)?.meta.id === published.at(-1)!.id && modules.every((m) => m.got.at(-1)?.id === published.at(-1)!.id));

      const ids = bare.received.map((r) => r.meta.id!);
      const wrong = bare.received.flatMap((r, i) => {
        const base = (r.meta as { base?: string }).base;
        return base !== undefined && base !== ids[i - 1] ? [`${r.meta.id} on ${base}, after ${ids[i - 1]}`] : [];
      });
      assert.deepEqual(wrong, [], 'every delta names the message received just before it');
      assert.ok(ids.every((id, i) => i === 0 || compareIds(ids[i - 1]!, id) < 0), 'ids go forward');
      assert.ok(ids.length < published.length, `${published.length - ids.length} replaced, not queued`);
      assert.ok(bare.received.slice(-3).every((r) => (r.meta as { base?: string }).base !== undefined), 'deltas again after the held message');
      assert.equal(bareClosed, false, 'not closed');
      const [slow, reading] = modules as [(typeof modules)[0], (typeof modules)[0]];
      assert.equal(slow.herald.stats.mismatches, 0, 'the module never had to refuse a delta');
      assert.deepEqual(slow.got.map((g) => g.n), [...slow.got.map((g) => g.n)].sort((x, y) => x - y));
      assert.deepEqual(reading.got, published, 'the reading client has every message, in order');
      assert.equal((await stats()).slowConsumerDisconnects, 0);
      console.log(`# ${transport}: ${published.length} published; the slow bare client received ${ids.length}, the slow module ${slow.got.length} (${slow.herald.stats.deltas} deltas)`);
    });
  });
}
