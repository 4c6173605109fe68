import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { io as connect, type Socket } from 'socket.io-client';
import { publish } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { onceWithin, waitFor } from './helpers/wait.js';
import { decodePortable, encodePortable } from '../src/recovery/portable.js';
import { Journal } from '../src/recovery/journal.js';
import { createRedisSessionStore } from '../src/recovery/redis-store.js';
import { COMMAND_MARKS_PER_KEY, createMemorySessionStore, type SessionStore } from '../src/recovery/store.js';

const KEY = 'portable-commands-key-0123456789';
const CONTROL_KEY = 'portable-commands-control-0123456789';
const JWT = 'portable-commands-jwt-0123456789-abcdef';

describe('portable recovery offsets: what the closing replica heard', () => {
  it('reads back the time and socket id, after the partial mark, and nothing malformed', () => {
    const state = { base: 'ep0ch.42', history: { 'feed:a': '1-0' }, rooms: [], partial: true, heard: { until: 1764892800123, sid: 'AbC-d_e' } };
    const offset = encodePortable(state);
    assert.equal(offset, 'ep0ch.42!feed:a|1-0!!+!@1764892800123.AbC-d_e');
    assert.deepEqual(decodePortable(offset, 10), state);
    assert.deepEqual(decodePortable('e.1!!!@5.s1', 10), { base: 'e.1', history: {}, rooms: [], partial: false, heard: { until: 5, sid: 's1' } });
    for (const bad of ['e.1!!!@5.s1!+', 'e.1!!!@x.s1', 'e.1!!!@5.', 'e.1!!!@5.s 1', 'e.1!!!+!+', 'e.1!!!@5.s1!@6.s2']) {
      assert.equal(decodePortable(bad, 10), undefined, bad);
    }
  });
});

/**
 * A replica that cannot reach Redis closes its clients with portable offsets (no session saved).
 * A control command sent meanwhile through another replica reaches no session; the restore must
 * not undo it (docs/reference/client-contract.md). Each case presents the offset such a replica
 * writes, with the time until which it heard every command, and sends the command after it.
 */
describe('portable recovery offsets: control commands the closing replica did not hear', () => {
  let redis: RedisProcess;
  let g: Gateway;
  let r: Redis;
  const sockets: Socket[] = [];

  before(async () => {
    redis = await startRedis();
    r = new Redis(redis.url);
    g = await startGateway({ env: { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, CONTROL_KEYS: CONTROL_KEY, JWT_SECRET: JWT, HISTORY_ROOMS: 'feed:*' } });
  });
  after(async () => {
    for (const s of sockets) s.close();
    r?.disconnect();
    await g?.stop();
    await redis?.stop();
  });

  const control = async (path: string, body: unknown) => {
    const res = await fetch(`${g.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${CONTROL_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`);
    return (await res.json()) as Record<string, unknown>;
  };
  const client = async (user: string, offset: string) => {
    const token = await new SignJWT({ sub: user, rooms: ['feed:*', 'plain:*'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
      .sign(new TextEncoder().encode(JWT));
    // As socket.io-client reconnects after its connection closed: with the session id and the
    // last offset it kept (it says `recovered` when the server keeps that session id).
    const socket = connect(g.url, { transports: ['websocket'], forceNew: true, reconnection: false, autoConnect: false, auth: { token } });
    Object.assign(socket, { _pid: `gone-${user}`, _lastOffset: offset });
    const got: { room: string; data: unknown }[] = [];
    socket.on('m', (data: unknown, meta: { room: string }) => got.push({ room: meta.room, data }));
    sockets.push(socket);
    socket.connect();
    await onceWithin(socket, 'connect', 'connect');
    return { socket, got };
  };
  /** Two history rooms at their newest entry, as a client that had everything would say. */
  const positions = async (tag: string) => {
    const a = await publish(g.url, { room: `feed:a-${tag}`, event: 'm', data: 'old a' }, KEY);
    const b = await publish(g.url, { room: `feed:b-${tag}`, event: 'm', data: 'old b' }, KEY);
    return `feed:a-${tag}|${a.body.ids[`feed:a-${tag}`]},feed:b-${tag}|${b.body.ids[`feed:b-${tag}`]}`;
  };
  /** A fresh connection: in no room of its offset (`room` gets a message it must not see), and its own subscribe works. */
  const assertFresh = async (socket: Socket, got: { data: unknown }[], room: string, own: string) => {
    await publish(g.url, { room, event: 'm', data: 'not subscribed' }, KEY);
    const ack = (await socket.timeout(5000).emitWithAck('subscribe', own)) as { ok: boolean };
    assert.equal(ack.ok, true);
    await publish(g.url, { room: own, event: 'm', data: 'subscribed' }, KEY);
    await waitFor(`its own subscribe works (${own})`, () => got.length > 0);
    assert.deepEqual(got.map((m) => m.data), ['subscribed'], `no room came back (${own})`);
  };
  /** Publishes to both rooms, a first; waits for b's; what arrived of a came before it on the one connection. */
  const liveRooms = async (got: { room: string; data: unknown }[], tag: string) => {
    await publish(g.url, { room: `feed:a-${tag}`, event: 'm', data: 'live a' }, KEY);
    await publish(g.url, { room: `feed:b-${tag}`, event: 'm', data: 'live b' }, KEY);
    await waitFor(`live b (${tag})`, () => got.some((m) => m.data === 'live b'));
    return got.filter((m) => m.data === 'live a' || m.data === 'live b').map((m) => m.room);
  };

  it('an unsubscribe sent after the replica stopped hearing: the room is not restored, the rest is, whole', async () => {
    const history = await positions('u1');
    const heard = Date.now() - 1000;
    const answer = await control('/v1/unsubscribe', { user: 'alice', room: 'feed:a-u1' });
    assert.deepEqual([answer.unsubscribed, answer.waiting], [0, 0], 'nothing open or waiting to reach');
    const { socket, got } = await client('alice', `AAAA.1!${history}!!@${heard}.alice-socket`);
    assert.equal(socket.recovered, true, 'its other history room restored whole');
    assert.deepEqual(await liveRooms(got, 'u1'), ['feed:b-u1'], 'never the room the backend took it out of');
  });

  it('an unsubscribe the replica heard (before the time in the offset): the room in the offset stays', async () => {
    const history = await positions('u2');
    await control('/v1/unsubscribe', { user: 'alice2', room: 'feed:a-u2' });
    // The replica heard it and the client subscribed again after it: its offset names the room.
    const heard = Date.now() + 1;
    await waitFor('the clock past the offset time', () => Date.now() > heard);
    const { socket, got } = await client('alice2', `AAAA.1!${history}!!@${heard}.alice2-socket`);
    assert.equal(socket.recovered, true);
    assert.deepEqual(await liveRooms(got, 'u2'), ['feed:a-u2', 'feed:b-u2']);
  });

  it('a disconnect of the user, or of the socket id, sent after: the client starts afresh', async () => {
    for (const [user, target, sid] of [
      ['bob', { user: 'bob', reason: 'ban' }, 'bob-socket'],
      ['carol', { client: 'carolSocketId0000000' }, 'carolSocketId0000000'],
    ] as const) {
      const history = await positions(user);
      const heard = Date.now() - 1000;
      await control('/v1/disconnect', target);
      const { socket, got } = await client(user, `AAAA.1!${history}!!@${heard}.${sid}`);
      assert.equal(socket.recovered, false, `${user}: not restored`);
      await assertFresh(socket, got, `feed:a-${user}`, `plain:${user}`);
    }
  });

  it('a subscribe sent after: the room is joined, and the restore is not whole (its messages in between are lost)', async () => {
    const history = await positions('s1');
    const heard = Date.now() - 1000;
    await control('/v1/subscribe', { user: 'dave', room: 'plain:granted' });
    const { socket, got } = await client('dave', `AAAA.1!${history}!!@${heard}.dave-socket`);
    assert.equal(socket.recovered, false);
    await publish(g.url, { room: 'plain:granted', event: 'm', data: 'granted' }, KEY);
    await waitFor('the granted room', () => got.some((m) => m.data === 'granted'));
  });

  it(`keeps at most ${COMMAND_MARKS_PER_KEY} marks per user: past them, one disconnect stands for the rest`, async () => {
    const history = await positions('e1');
    const heard = Date.now() - 1000;
    for (let i = 0; i < COMMAND_MARKS_PER_KEY + 40; i++) await control('/v1/unsubscribe', { user: 'erin', room: `plain:r${i}` });
    const keys = await r.keys('*-marks:*');
    const sizes = await Promise.all(keys.map((k) => r.hlen(k)));
    assert.ok(Math.max(...sizes) <= COMMAND_MARKS_PER_KEY + 1, `the largest marks hash holds ${Math.max(...sizes)} fields`);
    assert.ok(sizes.includes(COMMAND_MARKS_PER_KEY + 1), `erin's hash is at its bound (${sizes.join(', ')})`);
    const ttls = await Promise.all(keys.map((k) => r.pttl(k)));
    assert.ok(ttls.every((t) => t > 0), `every marks key expires (${ttls.join(', ')})`);
    const { socket } = await client('erin', `AAAA.1!${history}!!@${heard}.erin-socket`);
    assert.equal(socket.recovered, false, 'the commands past the bound are not lost: the client starts afresh');
  });

  it("a socket id in an offset is anyone's to write: another connection's marks never grant a room past the claims", async () => {
    const history = await positions('g1');
    const heard = Date.now() - 1000;
    // The backend grants bob's connection a room mallory's claims (feed:*, plain:*) do not reach.
    await control('/v1/subscribe', { client: 'bobSocketId000000000', room: 'secret:bob' });
    const { socket, got } = await client('mallory', `AAAA.1!${history}!!@${heard}.bobSocketId000000000`);
    assert.equal(socket.recovered, false, 'not whole: the subscribe could not be applied');
    await publish(g.url, { room: 'secret:bob', event: 'm', data: 'secret' }, KEY);
    assert.deepEqual(await liveRooms(got, 'g1'), ['feed:a-g1', 'feed:b-g1']);
    assert.ok(!got.some((m) => m.data === 'secret'), "never bob's granted room");
  });

  it('an offset older than its marks are kept is not honoured', async () => {
    const history = await positions('o1');
    const { socket, got } = await client('frank', `AAAA.1!${history}!!@${Date.now() - 24 * 3600_000}.frank-socket`);
    assert.equal(socket.recovered, false);
    await assertFresh(socket, got, 'feed:a-o1', 'plain:frank');
  });
});

describe('command marks: old ones go, so a busy user does not end at the bound for good', () => {
  const check = async (store: SessionStore) => {
    const ttl = 60_000;
    for (let i = 0; i < COMMAND_MARKS_PER_KEY + 5; i++) await store.markCommand({ user: 'busy' }, { kind: 'subscribe', room: `plain:old-${i}` }, 1_000 + i, ttl);
    const full = await store.commandMarks({ user: 'busy' });
    assert.equal(full.size, COMMAND_MARKS_PER_KEY + 1, 'at the bound, the rest kept as one disconnect');
    assert.ok(full.has('d'));
    // Past the ttl of them all: they go before the new one is counted.
    await store.markCommand({ user: 'busy' }, { kind: 'unsubscribe', room: 'plain:new' }, 100_000, ttl);
    assert.deepEqual([...(await store.commandMarks({ user: 'busy' }))], [['u:plain:new', 100_000]]);
  };
  it('in memory', async () => {
    await check(createMemorySessionStore(new Journal({ roomEntries: 10, entries: 100, socketSends: 10 }), 10));
  });
  it('in Redis', async () => {
    const redis = await startRedis();
    const r = new Redis(redis.url);
    try {
      await check(createRedisSessionStore(r, 'marks-test', 10, 10));
    } finally {
      r.disconnect();
      await redis.stop();
    }
  });
});
