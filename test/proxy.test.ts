import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startBackend, type Gateway } from './helpers/gateway.js';
import { startReceiver, type Hit, type Receiver } from './helpers/receiver.js';
import type { RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const SECRET = 'proxy-signing-secret-0123456789';
const JWT = 'test-jwt-secret-0123456789-abcdefghij';
const KEY = 'test-publish-key-0123456789';
/** An answer far past what herald reads of one (64 KiB), streamed by the backend as fast as herald takes it. */
const HUGE = 64 * 1024 * 1024;

const token = (sub: string, claims: Record<string, unknown> = {}) =>
  new SignJWT({ sub, ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(new TextEncoder().encode(JWT));

/** The backend's decisions, by room (subscribe proxy) and by session cookie (connect proxy). */
function decide(hit: Hit): ReturnType<Receiver['handler']> {
  if (hit.path === '/subscribe') {
    const room = hit.body?.room as string;
    if (room === 'team:red' || room.startsWith('team:open-')) return { status: 200, body: { allow: true } };
    if (room === 'team:blue') return { status: 200, body: { allow: false } };
    if (room === 'team:coded') return { status: 200, body: { allow: false, code: 'not_found', message: 'There is no team coded.' } };
    if (room.startsWith('team:huge-')) return { status: 200, body: { allow: true }, stream: { field: 'pad', bytes: HUGE } };
    if (room.startsWith('team:code-')) return { status: 200, body: { allow: false, code: room.slice('team:code-'.length) } };
    if (room === 'team:garbage') return { status: 200, text: 'sure, why not' };
    if (room === 'team:broken') return { status: 500, body: { allow: true } };
    if (room.startsWith('team:slow')) return 'hang';
  }
  if (hit.path === '/connect') {
    const cookie = hit.body?.headers?.cookie as string | null;
    if (cookie === 'session=carol') return { status: 200, body: { user: 'carol', rooms: ['team:carol-*'], expiresAt: Math.floor(Date.now() / 1000) + 600 } };
    if (cookie === 'session=stale') return { status: 401, body: { error: 'signed out' } };
    if (cookie === 'session=slow') return 'hang';
    if (cookie === 'session=huge') return { status: 200, body: { user: 'huge' }, stream: { field: 'pad', bytes: HUGE } };
    return { status: 200, body: { nonsense: true } };
  }
  return { status: 404 };
}

describe('subscribe and connect proxies, two replicas sharing a Redis', () => {
  let backend: Receiver;
  let redis: RedisProcess | undefined;
  let a: Gateway;
  let b: Gateway;
  const clients: TestClient[] = [];
  const as = async (gw: Gateway, user: string, claims?: Record<string, unknown>) => {
    const c = await connectClient(gw.url, { auth: { token: await token(user, claims) } });
    clients.push(c);
    return c;
  };
  const asked = (room: string, user?: string) => backend.hits.filter((h) => h.path === '/subscribe' && h.body?.room === room && (user === undefined || h.body.user === user));
  const codeOf = (ack: any) => (ack.ok ? 'ok' : ack.error.code);
  /** The code a connection without a token was refused with, or `connected`. */
  const refusal = async (gw: Gateway, cookie: string) => {
    try {
      const c = await connectClient(gw.url, { extraHeaders: { cookie } });
      c.close();
      return 'connected';
    } catch (err) {
      return (err as { data?: { code?: string } }).data?.code ?? (err as Error).message;
    }
  };

  before(async () => {
    backend = await startReceiver(SECRET);
    backend.handler = decide;
    const started = await startBackend('redis', {
      JWT_SECRET: JWT,
      PUBLISH_KEYS: KEY,
      PUBLIC_ROOMS: 'lobby',
      WEBHOOK_SECRET: SECRET,
      SUBSCRIBE_PROXY_URL: `${backend.url}/subscribe`,
      PROXY_ROOMS: 'team:*',
      CONNECT_PROXY_URL: `${backend.url}/connect`,
      PROXY_TIMEOUT_MS: '1500',
      PROXY_CACHE_SECONDS: '60',
      PROXY_MAX_CONCURRENCY: '2',
    });
    redis = started.redis;
    [a, b] = started.gateways as [Gateway, Gateway];
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all([a, b].map((g) => g?.stop()));
    await backend?.close();
    await redis?.stop();
  });

  it('joins a room the backend allows, on either replica, having sent it the user, connection, room and claims', async () => {
    const alice = await as(a, 'alice', { org: 'acme' });
    assert.deepEqual(await alice.subscribe('team:red'), { ok: true, room: 'team:red' });
    const [request] = asked('team:red', 'alice');
    assert.deepEqual(
      { ...request!.body, claims: { sub: request!.body.claims.sub, org: request!.body.claims.org } },
      { user: 'alice', client: alice.socket.id, room: 'team:red', claims: { sub: 'alice', org: 'acme' } },
    );
    const onB = await as(b, 'alice');
    assert.deepEqual(await onB.subscribe('team:red'), { ok: true, room: 'team:red' });
    const sent = await publish(b.url, { room: 'team:red', event: 'm', data: 1 }, KEY);
    for (const c of [alice, onB]) assert.equal((await c.waitFor('team:red message', (r) => r.event === 'm')).meta.id, sent.body.id);
    assert.deepEqual(backend.unsigned, []);
  });

  it('refuses what the backend denies: forbidden, or the catalogue code it names', async () => {
    const bob = await as(a, 'bob');
    const denied = (await bob.subscribe('team:blue')) as any;
    assert.equal(codeOf(denied), 'forbidden');
    const coded = (await bob.subscribe('team:coded')) as any;
    assert.deepEqual(coded.error, { code: 'not_found', message: 'There is no team coded.' });
    assert.equal(codeOf(await bob.socket.timeout(5000).emitWithAck('presence', 'team:blue')), 'forbidden', 'nor its presence');
    assert.equal(asked('team:blue', 'bob').length, 1);
  });

  it('refuses with forbidden a code that only objects inherit (constructor, __proto__, toString), not with that code', async () => {
    const kim = await as(b, 'kim');
    for (const [code, expected] of [['constructor', 'forbidden'], ['__proto__', 'forbidden'], ['toString', 'forbidden'], ['hasOwnProperty', 'forbidden'], ['not_found', 'not_found']]) {
      const ack = (await kim.subscribe(`team:code-${code}`)) as any;
      assert.equal(asked(`team:code-${code}`, 'kim').length, 1, `${code}: the backend was asked`);
      assert.equal(codeOf(ack), expected, `${code}: ${JSON.stringify(ack)}`);
    }
  });

  it('publishes to rooms named like what objects inherit, as to any other room', async () => {
    const rooms = ['constructor', '__proto__', 'toString'];
    const lena = await as(a, 'lena', { rooms });
    for (const room of rooms) assert.equal(codeOf(await lena.subscribe(room)), 'ok', room);
    for (const room of rooms) {
      const sent = await publish(b.url, { room, event: 'm', data: room }, KEY);
      assert.equal(sent.body.ids[room], sent.body.id, `${room}: ${JSON.stringify(sent.body)}`);
      assert.equal((await lena.waitFor(room, (r) => r.meta?.room === room)).meta.id, sent.body.id, room);
    }
  });

  it('asks only about PROXY_ROOMS rooms nothing else allows, and never about user rooms', async () => {
    const gina = await as(b, 'gina', { rooms: ['team:green'] });
    assert.equal(codeOf(await gina.subscribe('team:green')), 'ok', 'the token allows it');
    assert.equal(codeOf(await gina.subscribe('lobby')), 'ok', 'public');
    assert.equal(codeOf(await gina.subscribe('other:x')), 'forbidden', 'not a PROXY_ROOMS room');
    assert.equal(codeOf(await gina.subscribe('user:bob')), 'forbidden', "another user's room");
    for (const room of ['team:green', 'lobby', 'other:x', 'user:bob']) assert.deepEqual(asked(room), [], `${room} not asked`);
  });

  it('remembers an allow for PROXY_CACHE_SECONDS on that replica, and keeps the room on refresh', async () => {
    const hugo = await as(a, 'hugo');
    assert.equal(codeOf(await hugo.subscribe('team:open-1')), 'ok');
    assert.equal(codeOf(await hugo.unsubscribe('team:open-1')), 'ok');
    assert.equal(codeOf(await hugo.subscribe('team:open-1')), 'ok');
    assert.equal(asked('team:open-1', 'hugo').length, 1, 'the second subscribe was answered from the cache');
    const refreshed = (await hugo.socket.timeout(5000).emitWithAck('refresh', { token: await token('hugo') })) as any;
    assert.equal(refreshed.ok, true);
    assert.deepEqual(refreshed.removed, [], 'a room the backend allowed is not taken away by a refresh');
  });

  it('fails closed: a backend slower than PROXY_TIMEOUT_MS, a 500 or an answer it cannot read refuses with unavailable', async () => {
    const ivan = await as(b, 'ivan');
    assert.equal(codeOf(await ivan.subscribe('team:slow-1')), 'unavailable');
    assert.equal(asked('team:slow-1').length, 1, 'it was asked');
    assert.equal(codeOf(await ivan.subscribe('team:broken')), 'unavailable');
    assert.equal(codeOf(await ivan.subscribe('team:garbage')), 'unavailable');
    const sent = await publish(a.url, { room: 'team:slow-1', event: 'm', data: 1 }, KEY);
    const marker = await publish(a.url, { room: 'user:ivan', event: 'marker', data: 1 }, KEY);
    await ivan.waitFor('marker', (r) => r.meta?.id === marker.body.id);
    assert.ok(!ivan.received.some((r) => r.meta?.id === sent.body.id), 'not joined');
  });

  it('fails closed on an answer over 64 KiB: refused with unavailable, the rest never read, memory not growing with it', async () => {
    const rss = async () => (await getJson(`${b.url}/readyz`)).body.rssBytes as number;
    const before = await rss();
    const nina = await as(b, 'nina');
    // PROXY_MAX_CONCURRENCY (2) such answers in flight at once, and then a handshake's.
    const acks = (await Promise.all(['team:huge-1', 'team:huge-2'].map((room) => nina.subscribe(room)))) as any[];
    assert.deepEqual(acks.map(codeOf), ['unavailable', 'unavailable'], JSON.stringify(acks));
    assert.match(acks[0].error.message, /more than 65536 bytes/);
    assert.equal(await refusal(b, 'session=huge'), 'unavailable');
    const answers = await waitFor('the backend saw all three answers end', () => {
      const hits = [...asked('team:huge-1'), ...asked('team:huge-2'), ...backend.hits.filter((h) => h.body?.headers?.cookie === 'session=huge')];
      return hits.length === 3 && hits.every((h) => h.streamed) ? hits.map((h) => h.streamed!) : undefined;
    });
    for (const a of answers) {
      assert.equal(a.complete, false, 'herald closed the connection');
      // What it wrote before the close: herald's 64 KiB plus what the sockets' buffers hold.
      assert.ok(a.written < HUGE / 4, `${a.written} bytes written of ${HUGE}`);
    }
    const grown = (await rss()) - before;
    assert.ok(grown < HUGE, `RSS grew ${grown} bytes over three ${HUGE}-byte answers`);
    const metrics = await (await fetch(`${b.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
    assert.match(metrics, /herald_proxy_requests_total\{proxy="connect",outcome="unavailable"\} [1-9]/);
    assert.equal(codeOf(await nina.subscribe('team:open-3')), 'ok', 'the replica still decides');
  });

  it('refuses at once with backend_busy past PROXY_MAX_CONCURRENCY requests in flight, instead of queueing them', async () => {
    const jo = await as(a, 'jo');
    const pending = [jo.subscribe('team:slow-2'), jo.subscribe('team:slow-3')];
    await waitFor('both slow requests at the backend', () => asked('team:slow-2').length + asked('team:slow-3').length === 2);
    assert.equal(codeOf(await jo.subscribe('team:open-2')), 'backend_busy');
    assert.deepEqual(asked('team:open-2'), [], 'the backend was not asked');
    assert.deepEqual((await Promise.all(pending)).map(codeOf), ['unavailable', 'unavailable']);
    assert.equal(codeOf(await jo.subscribe('team:open-2')), 'ok', 'free again');
    const metrics = await (await fetch(`${a.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
    assert.match(metrics, /herald_proxy_requests_total\{proxy="subscribe",outcome="busy"\} [1-9]/);
    assert.match(metrics, /herald_proxy_requests_total\{proxy="subscribe",outcome="unavailable"\} [1-9]/);
  });

  it('admits a cookie session the connect proxy accepts, as the user it names with its rooms, and refuses another', async () => {
    const carol = await connectClient(b.url, { extraHeaders: { cookie: 'session=carol', origin: 'http://app.example' } });
    clients.push(carol);
    const [request] = backend.hits.filter((h) => h.path === '/connect' && h.body.headers.cookie === 'session=carol');
    assert.deepEqual(request!.body, { headers: { cookie: 'session=carol', authorization: null, origin: 'http://app.example' }, auth: {}, address: '127.0.0.1' });
    assert.equal(codeOf(await carol.subscribe('team:carol-1')), 'ok', 'its rooms, with no subscribe proxy request');
    assert.deepEqual(asked('team:carol-1'), []);
    const toCarol = await publish(a.url, { room: 'user:carol', event: 'direct', data: 1 }, KEY);
    assert.equal((await carol.waitFor('user room message', (r) => r.event === 'direct')).meta.id, toCarol.body.id, 'joined user:carol');

    assert.equal(await refusal(a, 'session=stale'), 'unauthorized');
    assert.equal(await refusal(a, 'session=slow'), 'unavailable');
    assert.equal(await refusal(a, 'session=odd'), 'unavailable', 'a 200 without a user');
    assert.deepEqual(backend.unsigned, [], 'every proxy request was signed');
  });
});
