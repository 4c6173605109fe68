import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventSource } from 'eventsource';
import { chromium, type Browser } from 'playwright-core';
import { SignJWT, type JWTPayload } from 'jose';
import { compareIds } from '../src/protocol/ids.js';
import { publish } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startHaproxy, type Haproxy } from './helpers/haproxy.js';
import { freePort } from './helpers/ports.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { openSse, type SseReader } from './helpers/sse.js';
import { needs, toolPath } from './helpers/tools.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'sse-publish-key-0123456789';
const SECRET = 'sse-jwt-secret-0123456789-abcdefghijkl';
const HOOK_SECRET = 'sse-webhook-secret-0123456789';
const TRANSPORTS = ['uws', 'node'] as const;

const now = () => Math.floor(Date.now() / 1000);
function token(claims: JWTPayload, expSeconds = 3600): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(now() + expSeconds).sign(new TextEncoder().encode(SECRET));
}

async function metric(gw: Gateway, name: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

for (const transport of TRANSPORTS) {
  describe(`GET /v1/stream (TRANSPORT=${transport})`, () => {
    let gw: Gateway;
    const readers: SseReader[] = [];
    const open = async (query: string, headers: Record<string, string> = {}) => {
      const r = await openSse(`${gw.url}/v1/stream?${query}`, headers);
      readers.push(r);
      return r;
    };
    const pub = async (room: string, data: unknown, event = 'm') => {
      const res = await publish(gw.url, { room, event, data }, KEY);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body as { id: string; ids: Record<string, string> };
    };

    let receiver: Receiver;
    const post = async (path: string, body: unknown) => {
      // Without CONTROL_KEYS the control API takes loopback callers without a key (a publish key is refused).
      const res = await fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as any };
    };

    before(async () => {
      receiver = await startReceiver(HOOK_SECRET);
      gw = await startGateway({
        env: {
          WEBHOOK_URL: `${receiver.url}/hooks`,
          WEBHOOK_SECRET: HOOK_SECRET,
          PRESENCE_ROOMS: 'pres:*',
          SUBSCRIBE_PROXY_URL: `${receiver.url}/subscribe`,
          PROXY_ROOMS: 'proxied:*',
          TRANSPORT: transport,
          PUBLISH_KEYS: KEY,
          HISTORY_ROOMS: 'h:*',
          JWT_SECRET: SECRET,
          JWT_CLOCK_SKEW_SECONDS: '0',
          ALLOW_ANONYMOUS: 'true',
          PUBLIC_ROOMS: 'pub:*,h:*',
          LOG_LEVEL: 'debug',
        },
      });
    });
    after(async () => {
      for (const r of readers) r.close();
      await gw?.stop();
      await receiver?.close();
    });

    it('streams a room: SSE headers, retry, hello, and each message with the meta Socket.IO clients get', async () => {
      const r = await open('room=pub:live');
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      assert.equal(r.headers.get('cache-control'), 'no-cache, no-transform');
      assert.equal(r.headers.get('x-accel-buffering'), 'no');
      await r.waitFor('subscribed', (e) => e.event === 'herald:subscribed');
      assert.equal(r.lines[0], 'retry: 1000');
      assert.equal(r.events[0]!.event, 'herald:hello');
      assert.equal(r.events[0]!.data.data.replica, gw.replicaId);
      const sent = await pub('pub:live', { text: 'line one\nline two' });
      const got = await r.waitFor('the message', (e) => e.event === 'm');
      assert.deepEqual(got.data.data, { text: 'line one\nline two' });
      assert.equal(got.data.meta!.room, 'pub:live');
      assert.equal(got.data.meta!.id, sent.id);
      assert.equal(got.id, undefined, 'a room without history moves no position');
    });

    it('history rooms: `last` first, then live; Last-Event-ID resumes every history room once, in order; rooms without history say recovered: false', async () => {
      const first = [await pub('h:a', 1), await pub('h:a', 2), await pub('h:a', 3)];
      const r = await open('room=h:a&room=h:b&room=pub:c&last=2');
      await r.waitFor('both history rooms subscribed', () => r.events.filter((e) => e.event === 'herald:subscribed').length === 3);
      assert.deepEqual(r.events.filter((e) => e.event === 'm').map((e) => e.data.data), [2, 3]);
      await pub('h:b', 'b1');
      await pub('pub:c', 'c1');
      await r.waitFor('b1', (e) => e.data.data === 'b1');
      await r.waitFor('c1', (e) => e.data.data === 'c1');
      const resumeAt = r.events.at(-1)!.lastEventId;
      assert.match(resumeAt, /^[0-9a-f]{8}:\d+-\d+,\d+-\d+$/);
      r.close();
      await r.ended;
      const missed = [await pub('h:b', 'b2'), await pub('h:a', 4), await pub('h:b', 'b3')];
      const again = await open('room=h:a&room=h:b&room=pub:c', { 'last-event-id': resumeAt });
      await again.waitFor('three subscribed', () => again.events.filter((e) => e.event === 'herald:subscribed').length === 3);
      const replayed = again.events.filter((e) => e.event === 'm');
      assert.deepEqual(replayed.map((e) => e.data.meta!.id).sort(compareIds), missed.map((m) => Object.values(m.ids)[0]!).sort(compareIds));
      const acks = Object.fromEntries(again.events.filter((e) => e.event === 'herald:subscribed').map((e) => [e.data.data.room, e.data.data]));
      assert.equal(acks['h:a'].recovered, true);
      assert.equal(acks['h:b'].recovered, true);
      assert.equal(acks['pub:c'].recovered, false);
      assert.equal(first.length, 3);
    });

    it('`since` with a plain message id for a stream of one history room', async () => {
      const a = await pub('h:since', 1);
      await pub('h:since', 2);
      await pub('h:since', 3);
      const r = await open(`room=h:since&since=${a.ids['h:since']}`);
      await r.waitFor('subscribed', (e) => e.event === 'herald:subscribed');
      assert.deepEqual(r.events.filter((e) => e.event === 'm').map((e) => e.data.data), [2, 3]);
    });

    it('refuses forged, oversized and malformed Last-Event-IDs, too many rooms, and rooms the token does not allow, with codes', async () => {
      const forged = await open('room=h:a', { 'last-event-id': 'deadbeef:1-0' });
      assert.equal(forged.status, 400);
      assert.equal(forged.error!.code, 'invalid_last_event_id');
      const r = await open('room=h:a');
      const tag = (await r.waitFor('an id', (e) => e.lastEventId !== '')).lastEventId.split(':')[0]!;
      const malformed = await open('room=h:a', { 'last-event-id': `${tag}:1-0,2-0` });
      assert.equal(malformed.error?.code, 'invalid_last_event_id');
      const notAnId = await open('room=h:a', { 'last-event-id': `${tag}:abc` });
      assert.equal(notAnId.error?.code, 'invalid_last_event_id');
      const oversized = await open('room=h:a', { 'last-event-id': `${tag}:${'1'.repeat(3000)}` });
      assert.equal(oversized.status, 400);
      assert.equal(oversized.error!.code, 'invalid_last_event_id');
      const many = await open(Array.from({ length: 17 }, (_, i) => `room=pub:r${i}`).join('&'));
      assert.equal(many.status, 400);
      assert.equal(many.error!.code, 'too_many_subscriptions');
      const badRoom = await open('room=no%20spaces');
      assert.equal(badRoom.error?.code, 'invalid_room');
      const connectionRoom = await open(`room=${'a'.repeat(20)}`);
      assert.equal(connectionRoom.error?.code, 'forbidden');
      const anonymous = await open('room=priv:x');
      assert.equal(anonymous.status, 403);
      assert.equal(anonymous.error!.code, 'forbidden');
      const wrongClaim = await open(`room=priv:x&token=${await token({ sub: 'u1', rooms: ['other:*'] })}`);
      assert.equal(wrongClaim.error?.code, 'forbidden');
      const badToken = await open(`room=pub:x&token=${await token({ sub: 'u1' })}x`);
      assert.equal(badToken.status, 401);
      assert.equal(badToken.error!.code, 'unauthorized');
      const html = await open('room=pub:x', { accept: 'text/html' });
      assert.equal(html.status, 406);
      assert.equal(html.error!.code, 'not_event_stream');
      // The process still serves.
      const ok = await open('room=pub:still');
      await ok.waitFor('subscribed', (e) => e.event === 'herald:subscribed');
    });

    it('a token in ?token= or Authorization opens rooms its claims allow, is never logged, and ends the stream at exp', async () => {
      const jwt = await token({ sub: 'alice', rooms: ['priv:*'] });
      const byQuery = await open(`room=priv:q&token=${jwt}`);
      await byQuery.waitFor('subscribed', (e) => e.event === 'herald:subscribed' && e.data.data.ok === true);
      const byHeader = await open('room=priv:q&room=user:alice', { authorization: `Bearer ${jwt}` });
      await byHeader.waitFor('both subscribed', () => byHeader.events.filter((e) => e.event === 'herald:subscribed' && e.data.data.ok).length === 2);
      await pub('priv:q', 'secret');
      await byQuery.waitFor('message', (e) => e.data.data === 'secret');
      await byHeader.waitFor('message', (e) => e.data.data === 'secret');
      const shortLived = await token({ sub: 'bob', rooms: ['priv:*'] }, 2);
      const expiring = await open(`room=priv:q&token=${shortLived}`);
      const bye = await expiring.waitFor('token_expired', (e) => e.event === 'herald:disconnect', 10_000);
      assert.equal(bye.data.data.code, 'token_expired');
      await expiring.ended;
      const logs = JSON.stringify(gw.logs);
      assert.ok(!logs.includes(jwt) && !logs.includes(shortLived), 'no token in the logs');
    });

    it('presence, webhooks (transport "sse") and the control API (subscribe, unsubscribe, list, disconnect) reach streams', async () => {
      const jwt = await token({ sub: 'carol', rooms: ['priv:*', 'pres:*'] });
      const r = await open(`room=pres:lobby&room=priv:ctl&token=${jwt}`);
      await r.waitFor('both subscribed', () => r.events.filter((e) => e.event === 'herald:subscribed' && e.data.data.ok).length === 2);
      const client = r.events[0]!.data.data.client as string;
      const presence = await fetch(`${gw.url}/v1/rooms/pres:lobby/presence`, { headers: { authorization: `Bearer ${KEY}` } });
      assert.deepEqual(((await presence.json()) as { users: string[] }).users, ['carol']);
      const opened = await waitFor('connection.opened', () => receiver.hits.find((h) => h.body?.type === 'connection.opened' && h.body.data.client === client));
      assert.deepEqual(opened.body.data, { user: 'carol', client, replica: gw.replicaId, transport: 'sse' });

      assert.equal((await post('/v1/unsubscribe', { user: 'carol', room: 'priv:ctl' })).body.unsubscribed, 1);
      assert.equal((await post('/v1/subscribe', { client, room: 'pub:added' })).body.subscribed, 1);
      await pub('priv:ctl', 'gone');
      await pub('pub:added', 'added');
      await r.waitFor('the room the backend added', (e) => e.data.data === 'added');
      assert.ok(!r.events.some((e) => e.data.data === 'gone'), 'nothing of the room the backend took away');
      const listed = await fetch(`${gw.url}/v1/users/carol`);
      const { connections } = (await listed.json()) as { connections: { client: string; transport: string; rooms: string[] }[] };
      assert.deepEqual(connections.map((c) => [c.client, c.transport, c.rooms.sort()]), [[client, 'sse', ['pres:lobby', 'pub:added']]]);

      assert.equal((await post('/v1/disconnect', { user: 'carol' })).body.disconnected, 1);
      const bye = await r.waitFor('disconnected', (e) => e.event === 'herald:disconnect');
      assert.equal(bye.data.data.code, 'disconnected');
      await r.ended;
      assert.ok(r.lines.includes('retry: 3600000'), 'told not to come back soon');
      const closed = await waitFor('connection.closed', () => receiver.hits.find((h) => h.body?.type === 'connection.closed' && h.body.data.client === client));
      assert.equal(closed.body.data.transport, 'sse');
      const dave = await open(`room=priv:ctl&token=${await token({ sub: 'dave', rooms: ['priv:*'] })}`);
      await dave.waitFor('subscribed', (e) => e.event === 'herald:subscribed');
      assert.equal((await post('/v1/revoke', { user: 'dave' })).status, 200);
      const revoked = await dave.waitFor('revoked', (e) => e.event === 'herald:disconnect');
      assert.equal(revoked.data.data.code, 'token_revoked');
      await dave.ended;
      await waitFor('presence empty', async () => ((await (await fetch(`${gw.url}/v1/rooms/pres:lobby/presence`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { users: string[] }).users.length === 0);
      assert.deepEqual(receiver.unsigned, []);
    });

    it('asks the subscribe proxy about rooms the claims do not allow, and keeps its refusal code', async () => {
      receiver.handler = (hit) => (hit.path === '/subscribe' ? { status: 200, body: hit.body.room === 'proxied:yes' ? { allow: true } : { allow: false, code: 'forbidden', message: 'not for you' } } : undefined);
      const jwt = await token({ sub: 'erin' });
      const yes = await open(`room=proxied:yes&token=${jwt}`);
      await yes.waitFor('subscribed', (e) => e.event === 'herald:subscribed' && e.data.data.ok === true);
      const asked = receiver.hits.find((h) => h.path === '/subscribe' && h.body.room === 'proxied:yes')!;
      assert.equal(asked.body.user, 'erin');
      assert.equal(asked.body.client, yes.events[0]!.data.data.client);
      const no = await open(`room=proxied:no&token=${jwt}`);
      assert.equal(no.status, 403);
      assert.deepEqual(no.error, { code: 'forbidden', message: 'not for you' });
    });

    it('counts streams by transport label `sse`', async () => {
      const r = await open('room=pub:metrics');
      await r.waitFor('subscribed', (e) => e.event === 'herald:subscribed');
      assert.ok((await metric(gw, 'herald_connections{transport="sse"}')) >= 1);
    });

    it('a drain ends every stream with herald:disconnect {code: "draining"} and a retry hint', async () => {
      const r = await open('room=pub:drain');
      await r.waitFor('subscribed', (e) => e.event === 'herald:subscribed');
      gw.signal('SIGTERM');
      const bye = await r.waitFor('draining', (e) => e.event === 'herald:disconnect');
      assert.equal(bye.data.data.code, 'draining');
      await r.ended;
      assert.ok(r.lines.filter((l) => l.startsWith('retry: ')).length >= 2, 'a retry hint at the end too');
      assert.equal(await gw.exited(), 0);
    });
  });

  describe(`event stream limits (TRANSPORT=${transport})`, () => {
    let gw: Gateway;
    const readers: SseReader[] = [];
    const from = async (address: string, room = 'pub:limits') => {
      const r = await openSse(`${gw.url}/v1/stream?room=${room}`, { 'x-forwarded-for': address });
      readers.push(r);
      return r;
    };
    before(async () => {
      gw = await startGateway({
        env: { TRANSPORT: transport, PUBLISH_KEYS: KEY, TRUST_PROXY: '1', SSE_STREAMS_PER_IP: '2', MAX_CONNECTIONS: '3', SLOW_CLIENT_MAX_BYTES: String(64 * 1024) },
      });
    });
    after(async () => {
      for (const r of readers) r.close();
      await gw?.stop();
    });

    it('per address (SSE_STREAMS_PER_IP: 429 too_many_streams) and per replica (MAX_CONNECTIONS: a stream that says over_capacity and retry)', async () => {
      const a1 = await from('10.0.0.1');
      const a2 = await from('10.0.0.1');
      for (const r of [a1, a2]) await r.waitFor('subscribed', (e) => e.event === 'herald:subscribed');
      const a3 = await from('10.0.0.1');
      assert.equal(a3.status, 429);
      assert.equal(a3.error!.code, 'too_many_streams');
      const b1 = await from('10.0.0.2');
      await b1.waitFor('subscribed', (e) => e.event === 'herald:subscribed');
      const c1 = await from('10.0.0.3');
      const full = await c1.waitFor('over capacity', (e) => e.event === 'herald:disconnect');
      assert.equal(full.data.data.code, 'over_capacity');
      await c1.ended;
      assert.ok(c1.lines.some((l) => l.startsWith('retry: ')));
      for (const r of [a1, a2, b1]) r.close();
      await waitFor('streams closed', async () => (await metric(gw, 'herald_connections{transport="sse"}')) === 0);
      const again = await from('10.0.0.1');
      await again.waitFor('subscribed', (e) => e.event === 'herald:subscribed');
      again.close();
    });

    it('a reader that never reads is closed past SLOW_CLIENT_MAX_BYTES; the replica keeps serving', async () => {
      const room = 'pub:flood';
      const socket = connect(gw.port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(`GET /v1/stream?room=${room} HTTP/1.1\r\nHost: herald\r\nAccept: text/event-stream\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n`);
      socket.pause();
      const watcher = await from('10.0.0.4', room);
      await watcher.waitFor('subscribed', (e) => e.event === 'herald:subscribed');
      await waitFor('the raw stream to be open', async () => (await metric(gw, 'herald_connections{transport="sse"}')) === 2);
      const pad = 'x'.repeat(48 * 1024);
      let published = 0;
      // Bounded: the kernel's buffers on loopback hold a few MB; 40 MB of publishes is far past them and the bound.
      while ((await metric(gw, 'herald_slow_consumer_disconnects_total')) < 1 && published < 800) {
        for (let i = 0; i < 20; i++, published++) assert.equal((await publish(gw.url, { room, event: 'm', data: pad }, KEY)).status, 200);
      }
      assert.equal(await metric(gw, 'herald_slow_consumer_disconnects_total'), 1, `closed after ${published} publishes`);
      console.log(`# ${transport}: a reader that never reads was closed after ${published} publishes of 48 KiB`);
      socket.destroy();
      // The reader that reads is untouched.
      await publish(gw.url, { room, event: 'end', data: 0 }, KEY);
      await watcher.waitFor('end', (e) => e.event === 'end');
      assert.equal(watcher.events.filter((e) => e.event === 'm').length, published);
    });
  });
}

/** Without a token, the connect proxy decides from the request's cookies, as for a Socket.IO handshake. */
describe('event streams admitted by the connect proxy (a session cookie)', () => {
  let receiver: Receiver;
  let gw: Gateway;
  const readers: SseReader[] = [];
  before(async () => {
    receiver = await startReceiver(HOOK_SECRET);
    receiver.handler = (hit) =>
      hit.path !== '/connect' ? undefined : hit.body.headers.cookie === 'session=ok' ? { status: 200, body: { user: 'frank', rooms: ['priv:*'] } } : { status: 401, body: {} };
    gw = await startGateway({ env: { PUBLISH_KEYS: KEY, CONNECT_PROXY_URL: `${receiver.url}/connect`, WEBHOOK_SECRET: HOOK_SECRET } });
  });
  after(async () => {
    for (const r of readers) r.close();
    await gw?.stop();
    await receiver?.close();
  });

  it('opens the rooms the backend allows for the cookie, and refuses without it (401)', async () => {
    const r = await openSse(`${gw.url}/v1/stream?room=priv:cookie`, { cookie: 'session=ok' });
    readers.push(r);
    await r.waitFor('subscribed', (e) => e.event === 'herald:subscribed' && e.data.data.ok === true);
    const asked = receiver.hits.find((h) => h.path === '/connect')!;
    assert.equal(asked.body.address, '127.0.0.1');
    await publish(gw.url, { room: 'priv:cookie', event: 'm', data: 'for frank' }, KEY);
    await r.waitFor('the message', (e) => e.data.data === 'for frank');
    const without = await openSse(`${gw.url}/v1/stream?room=priv:cookie`);
    assert.equal(without.status, 401);
    assert.equal(without.error!.code, 'unauthorized');
    assert.deepEqual(receiver.unsigned, []);
  });
});

/**
 * A replica cut off from Redis for REDIS_OUTAGE_CLOSE_SECONDS ends its streams (to resume on a
 * replica that can serve them) and answers new ones with a retry, until Redis is back.
 */
describe('event streams on a replica cut off from Redis', () => {
  let redis: RedisProcess;
  let gw: Gateway;
  const readers: SseReader[] = [];
  before(async () => {
    redis = await startRedis();
    gw = await startGateway({ env: { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, REDIS_OUTAGE_CLOSE_SECONDS: '2', REDIS_TIMEOUT_SECONDS: '2' } });
  });
  after(async () => {
    for (const r of readers) r.close();
    await gw?.stop();
    await redis?.stop();
  });

  it('ends them with herald:disconnect {code: "redis_unreachable"} and a retry; new ones get the same until Redis is back', async () => {
    const r = await openSse(`${gw.url}/v1/stream?room=pub:outage`);
    readers.push(r);
    await r.waitFor('subscribed', (e) => e.event === 'herald:subscribed');
    await redis.kill();
    const bye = await r.waitFor('redis_unreachable', (e) => e.event === 'herald:disconnect', 20_000);
    assert.equal(bye.data.data.code, 'redis_unreachable');
    await r.ended;
    const refused = await openSse(`${gw.url}/v1/stream?room=pub:outage`);
    readers.push(refused);
    const told = await refused.waitFor('told', (e) => e.event === 'herald:disconnect');
    assert.equal(told.data.data.code, 'redis_unreachable');
    assert.ok(refused.lines.some((l) => l.startsWith('retry: ')));
    await redis.restart();
    await waitFor('a stream once Redis is back', async () => {
      const again = await openSse(`${gw.url}/v1/stream?room=pub:outage`);
      readers.push(again);
      return again.waitFor('subscribed or told', (e) => e.event === 'herald:subscribed' || e.event === 'herald:disconnect').then((e) => e.event === 'herald:subscribed');
    }, 20_000);
  });
});

/** The page the test serves: a real `new EventSource(url)` on another origin, whose handlers only record. */
function followerPage(streamUrl: string): string {
  return `<!doctype html><meta charset="utf-8"><title>follower</title><script>
window.received = {}; window.hellos = []; window.subscribed = 0;
const feed = new EventSource(${JSON.stringify(streamUrl)});
feed.addEventListener('herald:hello', (e) => hellos.push(JSON.parse(e.data).data.replica));
feed.addEventListener('herald:subscribed', () => subscribed++);
feed.addEventListener('m', (e) => { const { meta } = JSON.parse(e.data); (received[meta.room] ??= []).push(meta.id); });
</script>`;
}

/**
 * deploy/compose/haproxy.cfg in front of two replicas (one on uWS, one on the Node transport) and
 * a redis-server. The `eventsource` npm client in Node and a page in headless Chromium (served by
 * the test from another origin) follow two history rooms through the balancer while a publisher
 * writes into both; the npm client's replica is drained, then the one both are on is killed with
 * -9. Nothing but `new EventSource(url)`: every acknowledged message arrives once, in order.
 */
describe('EventSource (npm and Chromium) through HAProxy across a drain and a kill -9', { skip: needs('haproxy', 'chromium') }, () => {
  let redis: RedisProcess;
  let lb: Haproxy;
  const names = ['gw1', 'gw2'] as const;
  type Name = (typeof names)[number];
  const ports = {} as Record<Name, number>;
  const gateways = {} as Record<Name, Gateway>;
  let es: EventSource | undefined;
  let browser: Browser | undefined;
  let site: Server | undefined;

  const launch = async (name: Name) => {
    gateways[name] = await startGateway({
      env: { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, PORT: String(ports[name]), DRAIN_SECONDS: '2', HISTORY_ROOMS: 'sse:h:*', TRANSPORT: name === 'gw1' ? 'uws' : 'node', SSE_RETRY_MS: '300' },
    });
  };
  const nameOf = (replica: string) => names.find((n) => gateways[n].replicaId === replica)!;

  before(async () => {
    redis = await startRedis();
    for (const n of names) ports[n] = await freePort();
    await Promise.all(names.map(launch));
    lb = await startHaproxy(names.map((n) => ({ name: n, port: ports[n] })));
  });
  after(async () => {
    es?.close();
    await browser?.close();
    site?.close();
    await lb?.stop();
    await Promise.all(names.map((n) => gateways[n]?.stop()));
    await redis?.stop();
  });

  it('every acknowledged message of both rooms arrives once and in order', async () => {
    const rooms = ['sse:h:a', 'sse:h:b'];
    const received: Record<string, string[]> = { 'sse:h:a': [], 'sse:h:b': [] };
    const hellos: Name[] = [];
    es = new EventSource(`${lb.url}/v1/stream?room=${rooms[0]}&room=${rooms[1]}`);
    es.addEventListener('herald:hello', (e) => hellos.push(nameOf(JSON.parse(e.data).data.replica)));
    es.addEventListener('m', (e) => {
      const { meta } = JSON.parse(e.data) as { meta: { room: string; id: string } };
      received[meta.room]!.push(meta.id);
    });
    let subscribed = 0;
    es.addEventListener('herald:subscribed', () => subscribed++);
    await waitFor('both rooms subscribed', () => subscribed >= 2);

    // The page, from an origin of its own (CORS_ORIGINS is * outside production).
    const html = followerPage(`${lb.url}/v1/stream?room=${rooms[0]}&room=${rooms[1]}`);
    site = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html));
    await new Promise<void>((resolve) => site!.listen(0, '127.0.0.1', resolve));
    browser = await chromium.launch({
      executablePath: toolPath('chromium'),
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${(site.address() as AddressInfo).port}/`);
    await page.waitForFunction(() => (window as unknown as { subscribed: number }).subscribed >= 2);
    type PageState = { received: Record<string, string[]>; hellos: string[] };
    const pageState = () => page.evaluate(() => ({ received: (window as any).received, hellos: (window as any).hellos }) as PageState);

    const acked: Record<string, string[]> = { 'sse:h:a': [], 'sse:h:b': [] };
    let stop = false;
    let n = 0;
    const publisher = (async () => {
      while (!stop && n < 4000) {
        const room = rooms[n++ % 2]!;
        const res = await publish(lb.url, { room, event: 'm', data: n }, KEY).catch(() => undefined);
        if (res?.status === 200) acked[room]!.push(res.body.ids[room]);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const progress = async (what: string) => {
      const mark = acked['sse:h:a']!.length + acked['sse:h:b']!.length + 20;
      await waitFor(`${what}: publishes go on`, () => acked['sse:h:a']!.length + acked['sse:h:b']!.length >= mark, 20_000);
    };

    await progress('before');
    const drained = hellos.at(-1)!;
    gateways[drained].signal('SIGTERM');
    assert.equal(await gateways[drained].exited(), 0);
    await waitFor('the stream to be back on the other replica', () => hellos.length >= 2 && hellos.at(-1) !== drained, 20_000);
    const survivor = gateways[hellos.at(-1)!].replicaId;
    await waitFor('the page on the survivor too', async () => (await pageState()).hellos.at(-1) === survivor, 20_000);
    await launch(drained);
    await lb.waitForStatus(drained, 'UP');
    await progress('after the drain');

    const killed = hellos.at(-1)!;
    const before = hellos.length;
    const pageBefore = (await pageState()).hellos.length;
    gateways[killed].signal('SIGKILL');
    await gateways[killed].exited();
    await waitFor('the stream to be back after the kill', () => hellos.length > before, 20_000);
    await waitFor('the page back after the kill', async () => (await pageState()).hellos.length > pageBefore, 20_000);
    await launch(killed);
    await lb.waitForStatus(killed, 'UP');
    await progress('after the kill');
    stop = true;
    await publisher;

    const check = (who: string, got: string[], room: string) => {
      for (let i = 1; i < got.length; i++) assert.ok(compareIds(got[i - 1]!, got[i]!) < 0, `${who} ${room}: ${got[i - 1]} then ${got[i]}: in order, once`);
      const missing = acked[room]!.filter((id) => !got.includes(id));
      assert.deepEqual(missing, [], `${who} ${room}: every acknowledged message`);
    };
    for (const room of rooms) {
      const last = acked[room]!.at(-1)!;
      await waitFor(`${room}: the last acknowledged message`, () => received[room]!.includes(last), 20_000);
      check('eventsource (npm)', received[room]!, room);
      await waitFor(`${room}: the last acknowledged message in the page`, async () => (await pageState()).received[room]?.includes(last), 20_000);
      check('Chromium', (await pageState()).received[room]!, room);
    }
    const seen = (await pageState()).hellos.length;
    console.log(`# EventSource: ${acked['sse:h:a']!.length + acked['sse:h:b']!.length} acknowledged; npm client ${hellos.length} streams (${hellos.join(' → ')}), Chromium ${seen}`);
  });
});
