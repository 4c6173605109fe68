import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { io as connect, type Socket } from 'socket.io-client';
import { publish } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { onceWithin, waitFor } from './helpers/wait.js';
import { decodePortable, encodePortable, PORTABLE_MAX_CHARS } from '../src/recovery/portable.js';

const KEY = 'portable-offset-key-0123456789';
const JWT = 'portable-offset-jwt-0123456789-abcdef';

describe('portable recovery offsets: the format', () => {
  it('reads back what it wrote, and nothing that breaks a rule', () => {
    const state = { base: 'ep0ch.42', history: { 'feed:a': '1-0', 'feed:b': null }, rooms: ['plain:x'], partial: false };
    const offset = encodePortable(state);
    assert.equal(offset, 'ep0ch.42!feed:a|1-0,feed:b|!plain:x');
    assert.deepEqual(decodePortable(offset, 10), state);
    assert.equal(decodePortable('ep0ch.42', 10), undefined, 'an ordinary offset');
    for (const bad of [
      'e.1!feed:a|1-0!plain:x!', // a fourth part that is not +
      'e.1!feed:a|not-an-id!', // an id that is not a stream id
      'e.1!feed a|1-0!', // a room name with a space
      'e.1!!AAAAAAAAAAAAAAAAAAAA', // a connection id's room
      'e.1!feed:a|1-0!feed:a', // a room twice
      'e.1!feed:a|1-0|2-0!', // a field too many
      `${'e'.repeat(41)}!!`, // a base longer than an offset
      `e.1!!${'r'.repeat(PORTABLE_MAX_CHARS)}`, // longer than the bound
    ]) {
      assert.equal(decodePortable(bad, 10), undefined, bad);
    }
    assert.equal(decodePortable('e.1!!a,b,c', 2), undefined, 'more rooms than MAX_SUBSCRIPTIONS');
  });

  it('stays within its bound, and says when rooms were left out', () => {
    const rooms = Array.from({ length: 100 }, (_, i) => `plain:${'x'.repeat(100)}-${i}`);
    const offset = encodePortable({ base: 'e.1', history: {}, rooms, partial: false });
    assert.ok(offset.length <= PORTABLE_MAX_CHARS, `${offset.length} characters`);
    const read = decodePortable(offset, 100)!;
    assert.equal(read.partial, true);
    assert.ok(read.rooms.length > 0 && read.rooms.length < rooms.length);
  });
});

/**
 * A portable offset is not signed: whoever presents one gets no more than an explicit subscribe
 * with `since` per room would give the same token.
 */
describe('portable recovery offsets: a forged one grants nothing', () => {
  let redis: RedisProcess;
  let g: Gateway;
  const sockets: Socket[] = [];

  before(async () => {
    redis = await startRedis();
    g = await startGateway({ env: { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, JWT_SECRET: JWT, HISTORY_ROOMS: 'feed:*,secret:*' } });
  });
  after(async () => {
    for (const s of sockets) s.close();
    await g?.stop();
    await redis?.stop();
  });

  const client = async (offset: string) => {
    const token = await new SignJWT({ sub: 'mallory', rooms: ['feed:*', 'plain:*'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
      .sign(new TextEncoder().encode(JWT));
    const socket = connect(g.url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { token, pid: 'forged-session-id', offset } });
    const got: { room: string; data: unknown }[] = [];
    socket.on('m', (data: unknown, meta: { room: string }) => got.push({ room: meta.room, data }));
    sockets.push(socket);
    await onceWithin(socket, 'connect', 'connect');
    return { socket, got };
  };

  it('restores only rooms the token allows, from their positions, under a fresh id', async () => {
    const before = await publish(g.url, { room: 'feed:a', event: 'm', data: 'before' }, KEY);
    const missed = await publish(g.url, { room: 'feed:a', event: 'm', data: 'missed' }, KEY);
    await publish(g.url, { room: 'secret:s', event: 'm', data: 'secret before' }, KEY);
    const forged = `AAAA.1!feed:a|${before.body.ids['feed:a']},secret:s|0-1!plain:p`;
    const { socket, got } = await client(forged);
    assert.equal(socket.recovered, false, 'a room without history: not whole');
    assert.notEqual(socket.id, 'forged-session-id');
    await waitFor('the missed message of the allowed room', () => got.some((m) => m.data === 'missed'));
    assert.deepEqual(got, [{ room: 'feed:a', data: 'missed' }], `nothing else (${missed.body.ids['feed:a']})`);
    await publish(g.url, { room: 'secret:s', event: 'm', data: 'secret after' }, KEY);
    await publish(g.url, { room: 'plain:p', event: 'm', data: 'plain' }, KEY);
    await publish(g.url, { room: 'feed:a', event: 'm', data: 'after' }, KEY);
    await waitFor('live in the allowed rooms', () => got.some((m) => m.data === 'after'));
    assert.deepEqual(got.map((m) => m.data), ['missed', 'plain', 'after'], 'never the secret room');
  });

  it('ignores one that breaks a rule: a fresh connection with no rooms', async () => {
    const { socket, got } = await client(`AAAA.1!feed:a|1-0!${'plain:p,'.repeat(700)}plain:q`);
    assert.equal(socket.recovered, false);
    await publish(g.url, { room: 'feed:a', event: 'm', data: 'not subscribed' }, KEY);
    const ack = (await socket.timeout(5000).emitWithAck('subscribe', 'plain:q')) as { ok: boolean };
    assert.equal(ack.ok, true);
    await publish(g.url, { room: 'plain:q', event: 'm', data: 'subscribed' }, KEY);
    await waitFor('its own subscribe works', () => got.length > 0);
    assert.deepEqual(got.map((m) => m.data), ['subscribed']);
  });
});
