import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT, type JWTPayload } from 'jose';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis } from './helpers/redis.js';
import { startRedisCluster, type RedisCluster } from './helpers/redis-cluster.js';
import { onceWithin, waitFor } from './helpers/wait.js';

const PUBLISH_KEY = 'test-publish-key-0123456789';
const CONTROL_KEY = 'test-control-key-0123456789';
const TEAM_CONTROL_KEY = 'team-control-key-0123456789';
const SECRET = 'test-jwt-secret-0123456789-abcdefghij';

const nowSeconds = () => Math.floor(Date.now() / 1000);

function token(sub: string, opts: { iat?: number; jti?: string; rooms?: string[] } = {}): Promise<string> {
  const claims: JWTPayload = { sub, ...(opts.rooms ? { rooms: opts.rooms } : {}) };
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt(opts.iat ?? nowSeconds()).setExpirationTime(nowSeconds() + 3600);
  if (opts.jti) jwt = jwt.setJti(opts.jti);
  return jwt.sign(new TextEncoder().encode(SECRET));
}

interface Answer {
  status: number;
  body: any;
}

async function call(gw: Gateway, method: 'GET' | 'POST', path: string, body?: unknown, key: string | undefined = CONTROL_KEY): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await fetch(`${gw.url}${path}`, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}
const control = (gw: Gateway, path: string, body: unknown, key?: string) => call(gw, 'POST', path, body, key);

/** The code a refused connection got (`connect_error` data), or `connected`. */
async function refusal(url: string, tokenText: string): Promise<string> {
  try {
    const c = await connectClient(url, { auth: { token: tokenText } });
    c.close();
    return 'connected';
  } catch (err) {
    return ((err as { data?: { code?: string } }).data?.code ?? (err as Error).message) as string;
  }
}

async function metricsOf(gw: Gateway): Promise<string> {
  return (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${PUBLISH_KEY}` } })).text();
}

/** Why each client was disconnected (Socket.IO's reason), recorded from the moment it connected. */
const closeReasons = new WeakMap<TestClient, Promise<string>>();
async function connectAs(url: string, tokenText: string): Promise<TestClient> {
  const c = await connectClient(url, { auth: { token: tokenText } });
  closeReasons.set(
    c,
    onceWithin<[string]>(c.socket, 'disconnect', 'disconnect').then(
      ([reason]) => reason,
      () => 'still connected',
    ),
  );
  return c;
}

/** The disconnect herald announced, and Socket.IO's reason for the close that followed. */
async function kicked(c: TestClient): Promise<{ notice: any; reason: string }> {
  const notice = await c.waitFor('herald:disconnect', (r) => r.event === 'herald:disconnect');
  return { notice: notice.data, reason: await closeReasons.get(c)! };
}

const ENV = {
  PUBLISH_KEYS: PUBLISH_KEY,
  CONTROL_KEYS: `${CONTROL_KEY}, ${TEAM_CONTROL_KEY} rooms=team:*`,
  JWT_SECRET: SECRET,
  HISTORY_ROOMS: 'hist:*',
  PRESENCE_ROOMS: 'team:*',
};

/**
 * The control API against two replicas sharing a Redis: every user has a connection on each,
 * and every command is given to one replica and must reach the other.
 */
function controlSuite(name: string, start: () => Promise<{ env: Record<string, string>; stop(): Promise<void> }>) {
  describe(name, () => {
    let backend: { env: Record<string, string>; stop(): Promise<void> };
    let a: Gateway;
    let b: Gateway;
    const gateways: Gateway[] = [];
    const clients: TestClient[] = [];
    /** One connection of `sub` on each replica. */
    const onBoth = async (sub: string, opts: { iat?: number; jti?: string } = {}): Promise<[TestClient, TestClient]> => {
      const pair = await Promise.all([a, b].map(async (gw) => connectAs(gw.url, await token(sub, opts))));
      clients.push(...pair);
      return pair as [TestClient, TestClient];
    };

    before(async () => {
      backend = await start();
      a = await startGateway({ env: { ...ENV, ...backend.env } });
      b = await startGateway({ env: { ...ENV, ...backend.env } });
      gateways.push(a, b);
      for (const g of gateways) await waitFor(`${g.replicaId} ready`, async () => (await getJson(`${g.url}/readyz`)).status === 200);
    });
    after(async () => {
      for (const c of clients) c.close();
      await Promise.all(gateways.map((g) => g.stop()));
      await backend?.stop();
    });

    it('lists a user\'s connections on every replica', async () => {
      const [onA, onB] = await onBoth('ulla');
      const answer = await call(a, 'GET', '/v1/users/ulla');
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.body.replicas, { answered: 2, expected: 2 });
      const byClient = new Map(answer.body.connections.map((c: any) => [c.client, c]));
      assert.equal(answer.body.user, 'ulla');
      assert.equal(byClient.size, 2);
      for (const [c, gw] of [[onA, a], [onB, b]] as const) {
        const listed: any = byClient.get(c.socket.id!);
        assert.ok(listed, `connection on ${gw.replicaId} listed`);
        assert.equal(listed.replica, gw.replicaId);
        assert.equal(listed.transport, 'websocket');
        assert.deepEqual(listed.rooms, ['user:ulla']);
        assert.equal(typeof listed.connectedAt, 'number');
      }
      assert.deepEqual((await call(b, 'GET', '/v1/users/nobody')).body, { user: 'nobody', connections: [], replicas: { answered: 2, expected: 2 } });
    });

    it('subscribes every connection of a user, on both replicas, to a room its token does not name; and unsubscribes it', async () => {
      const [onA, onB] = await onBoth('sam');
      // The token names no team room: the client itself may not subscribe.
      assert.equal(((await onA.subscribe('team:ops')) as any).error.code, 'forbidden');
      const subscribed = await control(b, '/v1/subscribe', { user: 'sam', room: 'team:ops' });
      assert.deepEqual(subscribed, { status: 200, body: { subscribed: 2, waiting: 0, replicas: { answered: 2, expected: 2 } } });
      const sent = await publish(a.url, { room: 'team:ops', event: 'm', data: 1 }, PUBLISH_KEY);
      for (const c of [onA, onB]) assert.equal((await c.waitFor('team:ops message', (r) => r.event === 'm')).meta.id, sent.body.id);
      // Presence counts server-side subscriptions like any other.
      await waitFor('presence of team:ops', async () => {
        const p = await fetch(`${a.url}/v1/rooms/team:ops/presence`, { headers: { authorization: `Bearer ${PUBLISH_KEY}` } });
        const body = (await p.json()) as { connections: number; users: string[] };
        return body.connections === 2 && body.users.join() === 'sam';
      });
      const listed = (await call(a, 'GET', '/v1/users/sam')).body.connections;
      for (const c of listed) assert.deepEqual([...c.rooms].sort(), ['team:ops', 'user:sam']);

      const unsubscribed = await control(a, '/v1/unsubscribe', { user: 'sam', room: 'team:ops' });
      assert.deepEqual(unsubscribed, { status: 200, body: { unsubscribed: 2, waiting: 0, replicas: { answered: 2, expected: 2 } } });
      await publish(a.url, { room: 'team:ops', event: 'm', data: 2 }, PUBLISH_KEY);
      // Same publisher, same replica: the marker to the user room arrives after anything published before it.
      await publish(a.url, { room: 'user:sam', event: 'marker', data: null }, PUBLISH_KEY);
      for (const c of [onA, onB]) {
        await c.waitFor('marker', (r) => r.event === 'marker');
        assert.deepEqual(c.received.filter((r) => r.event === 'm').map((r) => r.data), [1]);
      }
      // A user's own room stays: later commands find its connections through it.
      assert.equal((await control(a, '/v1/unsubscribe', { user: 'sam', room: 'user:sam' })).body.unsubscribed, 0);
      assert.equal((await call(a, 'GET', '/v1/users/sam')).body.connections.length, 2);
    });

    it('subscribes to a history room at its current position, through one connection id', async () => {
      const [onA, onB] = await onBoth('hana');
      await publish(a.url, { room: 'hist:feed', event: 'h', data: 'before' }, PUBLISH_KEY);
      const answer = await control(a, '/v1/subscribe', { client: onB.socket.id, room: 'hist:feed' });
      assert.deepEqual(answer.body, { subscribed: 1, waiting: 0, replicas: { answered: 2, expected: 2 } });
      const sent = await publish(b.url, { room: 'hist:feed', event: 'h', data: 'after' }, PUBLISH_KEY);
      const got = await onB.waitFor('history message', (r) => r.event === 'h');
      assert.equal(got.data, 'after');
      assert.equal(got.meta.id, sent.body.ids['hist:feed']);
      await publish(a.url, { room: 'user:hana', event: 'marker', data: null }, PUBLISH_KEY);
      for (const c of [onA, onB]) await c.waitFor('marker', (r) => r.event === 'marker');
      assert.deepEqual(onB.received.filter((r) => r.event === 'h').map((r) => r.data), ['after']);
      assert.deepEqual(onA.received.filter((r) => r.event === 'h'), []);
    });

    it('disconnects every connection of a user on every replica, or one connection by id', async () => {
      const [onA, onB] = await onBoth('dan');
      const answer = await control(a, '/v1/disconnect', { user: 'dan', reason: 'banned for spam' });
      assert.deepEqual(answer, { status: 200, body: { disconnected: 2, waiting: 0, replicas: { answered: 2, expected: 2 } } });
      for (const c of [onA, onB]) {
        const { notice, reason } = await kicked(c);
        assert.equal(notice.code, 'disconnected');
        assert.equal(notice.reason, 'banned for spam');
        assert.equal(reason, 'io server disconnect');
      }
      const [stays, goes] = await onBoth('dora');
      assert.deepEqual((await control(a, '/v1/disconnect', { client: goes.socket.id })).body, { disconnected: 1, waiting: 0, replicas: { answered: 2, expected: 2 } });
      assert.equal((await kicked(goes)).notice.code, 'disconnected');
      assert.equal((await call(b, 'GET', '/v1/users/dora')).body.connections.map((c: any) => c.client).join(), stays.socket.id);
      assert.equal((await control(b, '/v1/disconnect', { user: 'nobody' })).body.disconnected, 0);
    });

    it('answers at the deadline with the reports it has when a replica does not answer, which still acts once it runs again', async () => {
      const [onA, onB] = await onBoth('paul');
      // Stopped, b keeps its Redis connections, so Redis still counts it, but it answers nothing.
      b.signal('SIGSTOP');
      let answer: Answer;
      try {
        answer = await control(a, '/v1/disconnect', { user: 'paul' });
      } finally {
        b.signal('SIGCONT');
      }
      assert.deepEqual(answer.body, { disconnected: 1, waiting: 0, replicas: { answered: 1, expected: 2 } });
      assert.equal((await kicked(onA)).notice.code, 'disconnected');
      // b reads the command when it runs again; its report comes too late to count.
      assert.equal((await kicked(onB)).notice.code, 'disconnected');
      assert.match(await metricsOf(a), /herald_control_commands_total\{command="disconnect",outcome="partial"\} 1/);
    });

    it('revokes a user\'s tokens issued before a time: connections closed, handshakes and refreshes refused, newer tokens connect', async () => {
      const t = nowSeconds();
      const old = await token('rita', { iat: t - 60 });
      const [onA, onB] = await onBoth('rita', { iat: t - 60 });
      const answer = await control(b, '/v1/revoke', { user: 'rita', issuedBefore: t - 30 });
      assert.equal(answer.status, 200);
      assert.equal(answer.body.disconnected, 2);
      assert.deepEqual(answer.body.replicas, { answered: 2, expected: 2 });
      assert.equal(answer.body.revoked.user, 'rita');
      for (const c of [onA, onB]) {
        const { notice, reason } = await kicked(c);
        assert.equal(notice.code, 'token_revoked');
        assert.equal(reason, 'io server disconnect');
      }
      for (const gw of [a, b]) assert.equal(await refusal(gw.url, old), 'token_revoked');
      // iat decides: a token issued at the revocation's issuedBefore or later connects.
      const fresh = await connectAs(a.url, await token('rita', { iat: t - 30 }));
      clients.push(fresh);
      const refreshed = (await fresh.socket.timeout(5000).emitWithAck('refresh', { token: old })) as any;
      assert.equal(refreshed.ok, false);
      assert.equal(refreshed.error.code, 'token_revoked');
      assert.ok(fresh.socket.connected);
      assert.match(await metricsOf(a), /herald_auth_failures_total\{code="token_revoked"\} [1-9]/);

      // A replica that was not there when it happened (a restart) refuses the token too.
      const late = await startGateway({ env: { ...ENV, ...backend.env } });
      gateways.push(late);
      assert.equal(await refusal(late.url, old), 'token_revoked');
      assert.equal(await refusal(late.url, await token('rita', { iat: t })), 'connected');
      // The other tests count two replicas.
      await late.stop();
      await waitFor('two replicas counted again', async () => (await call(a, 'GET', '/v1/users/nobody')).body.replicas.expected === 2);
    });

    it('revokes one token by jti: only its connection closes, and only it is refused afterwards', async () => {
      const revoked = await token('jo', { jti: 'jti-1' });
      const kept = await token('jo', { jti: 'jti-2' });
      const first = await connectAs(a.url, revoked);
      const second = await connectAs(b.url, kept);
      clients.push(first, second);
      const answer = await control(a, '/v1/revoke', { jti: 'jti-1', expiresAt: nowSeconds() + 3600 });
      assert.equal(answer.status, 200);
      assert.equal(answer.body.disconnected, 1);
      assert.equal((await kicked(first)).notice.code, 'token_revoked');
      assert.equal(await refusal(b.url, revoked), 'token_revoked');
      assert.equal(await refusal(b.url, kept), 'connected');
      assert.equal((await call(a, 'GET', '/v1/users/jo')).body.connections.map((c: any) => c.client).join(), second.socket.id);
    });

    it('refuses publish keys (403), missing or wrong keys (401), and room-limited keys outside their rooms', async () => {
      const routes: [string, 'GET' | 'POST', unknown][] = [
        ['/v1/disconnect', 'POST', { user: 'x' }],
        ['/v1/subscribe', 'POST', { user: 'x', room: 'team:a' }],
        ['/v1/unsubscribe', 'POST', { user: 'x', room: 'team:a' }],
        ['/v1/revoke', 'POST', { user: 'x' }],
        ['/v1/users/x', 'GET', undefined],
      ];
      for (const [path, method, body] of routes) {
        const withPublishKey = await call(a, method, path, body, PUBLISH_KEY);
        assert.equal(withPublishKey.status, 403, path);
        assert.equal(withPublishKey.body.error.code, 'forbidden', path);
        assert.equal((await call(a, method, path, body, '')).body.error.code, 'unauthorized', path);
        assert.equal((await call(a, method, path, body, 'not-a-key-at-all-0123456789')).status, 401, path);
      }
      // Control keys are not publish keys either.
      assert.equal((await publish(a.url, { room: 'r', event: 'e', data: 1 }, CONTROL_KEY)).status, 401);
      // A key limited to team:* rooms moves connections in and out of them, and does nothing else.
      assert.equal((await control(a, '/v1/subscribe', { user: 'x', room: 'team:a' }, TEAM_CONTROL_KEY)).status, 200);
      assert.equal((await control(a, '/v1/subscribe', { user: 'x', room: 'other' }, TEAM_CONTROL_KEY)).body.error.code, 'forbidden');
      assert.equal((await control(a, '/v1/disconnect', { user: 'x' }, TEAM_CONTROL_KEY)).body.error.code, 'forbidden');
      assert.equal((await call(a, 'GET', '/v1/users/x', undefined, TEAM_CONTROL_KEY)).body.error.code, 'forbidden');
    });

    it('refuses bad bodies with error codes', async () => {
      const cases: [string, unknown, number, string][] = [
        ['/v1/disconnect', '{not json', 400, 'invalid_json'],
        ['/v1/disconnect', [], 400, 'bad_request'],
        ['/v1/disconnect', {}, 400, 'bad_request'],
        ['/v1/disconnect', { user: 'x', client: 'abcdefghij0123456789' }, 400, 'bad_request'],
        ['/v1/disconnect', { user: 'x', force: true }, 400, 'bad_request'],
        ['/v1/disconnect', { user: 'has space' }, 400, 'bad_request'],
        ['/v1/disconnect', { client: 'short' }, 400, 'bad_request'],
        ['/v1/disconnect', { user: 'x', reason: 42 }, 400, 'bad_request'],
        ['/v1/subscribe', { user: 'x' }, 400, 'bad_request'],
        ['/v1/subscribe', { user: 'x', room: 'bad room' }, 400, 'invalid_room'],
        ['/v1/subscribe', { user: 'x', room: 'abcdefghij0123456789' }, 400, 'invalid_room'],
        ['/v1/unsubscribe', { user: 'x', room: 'r', extra: 1 }, 400, 'bad_request'],
        ['/v1/revoke', {}, 400, 'bad_request'],
        ['/v1/revoke', { user: 'x', jti: 'y' }, 400, 'bad_request'],
        ['/v1/revoke', { user: 'x', issuedBefore: 'yesterday' }, 400, 'bad_request'],
        ['/v1/revoke', { user: 'x', expiresAt: 1 }, 400, 'bad_request'],
        ['/v1/revoke', { jti: '' }, 400, 'bad_request'],
        ['/v1/revoke', { jti: 'y', issuedBefore: 1 }, 400, 'bad_request'],
      ];
      for (const [path, body, status, code] of cases) {
        const answer = await control(a, path, body);
        assert.equal(answer.status, status, `${path} ${JSON.stringify(body)}`);
        assert.equal(answer.body.error.code, code, `${path} ${JSON.stringify(body)}`);
      }
      assert.equal((await call(a, 'GET', '/v1/users/has%20space')).body.error.code, 'bad_request');
      assert.equal((await call(a, 'POST', '/v1/users/x')).body.error.code, 'method_not_allowed');
    });

    it('refuses revocation times it cannot keep with 400 naming the range, and keeps the latest it can in Redis', async () => {
      const outOfRange: unknown[] = [
        { user: 'x', issuedBefore: 1e18 },
        { user: 'x', issuedBefore: -1 },
        { user: 'x', issuedBefore: 253_402_300_800 },
        '{"user":"x","issuedBefore":1e400}',
        { jti: 'y', expiresAt: 1e18 },
        { jti: 'y', expiresAt: -0.5 },
      ];
      for (const body of outOfRange) {
        const answer = await control(a, '/v1/revoke', body);
        assert.equal(answer.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(answer.body)}`);
        assert.equal(answer.body.error.code, 'bad_request');
        assert.match(answer.body.error.message, /from 0 to 253402300799 /);
      }
      // 200, not 503: Redis took it. Every token of the user is refused, however fresh.
      const fresh = await token('far');
      const latest = await control(a, '/v1/revoke', { user: 'far', issuedBefore: 253_402_300_799 });
      assert.equal(latest.status, 200, JSON.stringify(latest.body));
      assert.equal(await refusal(b.url, fresh), 'token_revoked');
      const fraction = await control(b, '/v1/revoke', { jti: 'j-frac', expiresAt: nowSeconds() + 3600.5 });
      assert.equal(fraction.status, 200, JSON.stringify(fraction.body));
    });

    it('counts each command in metrics and logs one line per command, without keys or tokens', async () => {
      const [onA, onB] = await onBoth('mia', { jti: 'jti-mia' });
      await control(b, '/v1/subscribe', { user: 'mia', room: 'team:m' });
      const kickedId = onB.socket.id;
      await control(a, '/v1/disconnect', { client: kickedId, reason: 'metrics' });
      await kicked(onB);
      await control(a, '/v1/revoke', { jti: 'jti-mia' });
      await kicked(onA);
      const text = await metricsOf(a);
      assert.match(text, /herald_control_commands_total\{command="disconnect",outcome="complete"\} [1-9]/);
      assert.match(text, /herald_control_commands_total\{command="revoke",outcome="complete"\} [1-9]/);
      assert.match(text, /herald_control_connections_total\{command="subscribe"\} [1-9]/);
      assert.match(text, /herald_control_connections_total\{command="revoke"\} [1-9]/);
      // b applied the disconnect a was given.
      assert.match(await metricsOf(b), /herald_control_connections_total\{command="disconnect"\} [1-9]/);
      const line = await a.waitForLog('control command', (l) => l.msg === 'control command' && l.command === 'disconnect' && l.client === kickedId);
      assert.equal(line.connections, 1);
      assert.deepEqual(line.replicas, { answered: 2, expected: 2 });
      const secretish = [CONTROL_KEY, TEAM_CONTROL_KEY, PUBLISH_KEY, SECRET, 'eyJ'];
      for (const gw of gateways) {
        for (const l of gw.logs) {
          const text = JSON.stringify(l);
          for (const s of secretish) assert.ok(!text.includes(s), `log line of ${gw.replicaId} carries a key or token: ${text}`);
        }
      }
    });
  });
}

controlSuite(
  'control API: two replicas, classic Redis adapter',
  async () => {
    const r = await startRedis();
    return { env: { REDIS_URL: r.url }, stop: () => r.stop() };
  },
);

controlSuite(
  'control API: two replicas, sharded adapter on one Redis 7',
  async () => {
    const r = await startRedis();
    return { env: { REDIS_URL: r.url, REDIS_MODE: 'sharded' }, stop: () => r.stop() };
  },
);

controlSuite(
  'control API: two replicas, sharded adapter on a 3-master Redis Cluster',
  async () => {
    const cluster: RedisCluster = await startRedisCluster(3, 0);
    return { env: { REDIS_MODE: 'sharded', REDIS_CLUSTER_NODES: cluster.urls.join(',') }, stop: () => cluster.stop() };
  },
);

describe('control API: a single node without Redis', () => {
  let gw: Gateway;
  const clients: TestClient[] = [];
  before(async () => {
    gw = await startGateway({ env: ENV });
  });
  after(async () => {
    for (const c of clients) c.close();
    await gw?.stop();
  });

  it('acts on its own connections and keeps revocations in memory', async () => {
    const old = await token('solo', { iat: nowSeconds() - 60 });
    const c = await connectAs(gw.url, old);
    clients.push(c);
    assert.deepEqual((await control(gw, '/v1/subscribe', { user: 'solo', room: 'team:x' })).body, { subscribed: 1, waiting: 0, replicas: { answered: 1, expected: 1 } });
    const answer = await control(gw, '/v1/revoke', { user: 'solo' });
    assert.equal(answer.body.disconnected, 1);
    assert.equal((await kicked(c)).notice.code, 'token_revoked');
    assert.equal(await refusal(gw.url, old), 'token_revoked');
  });
});
