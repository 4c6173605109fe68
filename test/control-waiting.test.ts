import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import type { Socket } from 'socket.io-client';
import { connectClient, publish, type TestClient } from './helpers/clients.js';
import { startBackend, type Gateway } from './helpers/gateway.js';
import type { RedisProcess } from './helpers/redis.js';
import { drop, reconnect, recoveringClient } from './helpers/recovery.js';
import { waitFor } from './helpers/wait.js';

const PUBLISH_KEY = 'waiting-publish-key-0123456789';
const CONTROL_KEY = 'waiting-control-key-0123456789';
const SECRET = 'waiting-jwt-secret-0123456789-abcdefghij';
const ENV = { PUBLISH_KEYS: PUBLISH_KEY, CONTROL_KEYS: CONTROL_KEY, JWT_SECRET: SECRET, JWT_CLOCK_SKEW_SECONDS: '0', HISTORY_ROOMS: 'h:*' };

const nowSeconds = () => Math.floor(Date.now() / 1000);
let users = 0;
/** A user name no other test uses. */
const someone = (what: string) => `${what}-${++users}`;

function token(sub: string, opts: { jti?: string; iat?: number } = {}): Promise<string> {
  let jwt = new SignJWT({ sub, rooms: ['h:mine-*'] }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt(opts.iat ?? nowSeconds()).setExpirationTime(nowSeconds() + 3600);
  if (opts.jti) jwt = jwt.setJti(opts.jti);
  return jwt.sign(new TextEncoder().encode(SECRET));
}

async function control(gw: Gateway, path: string, body: unknown): Promise<any> {
  const res = await fetch(`${gw.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${CONTROL_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 200, path);
  return res.json();
}

async function saved(gw: Gateway): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${PUBLISH_KEY}` } })).text();
  return Number(/^herald_session_recovery_total\{outcome="saved"\} (\d+)$/m.exec(text)?.[1] ?? 0);
}

/** Drops `socket`'s connection and waits until its replica has saved the session. */
async function dropAndWait(socket: Socket, gw: Gateway): Promise<void> {
  const before = await saved(gw);
  await drop(socket);
  await waitFor('the session to be saved', async () => (await saved(gw)) > before);
}

/**
 * A session saved for recovery is the user's connection too: control commands reach it while it
 * waits for its client, and its restore never undoes them. Commands go to the replica the client
 * was not on; each waiting session is counted once, whatever the number of replicas.
 */
for (const store of ['redis', 'memory'] as const) {
  for (const transport of ['uws', 'node'] as const) {
    describe(`control commands reach sessions waiting for their client (${store} store, TRANSPORT=${transport})`, () => {
      let gateways: Gateway[];
      let redis: RedisProcess | undefined;
      /** Where clients connect, and where commands are sent (the other replica when there are two). */
      let home: Gateway;
      let other: Gateway;
      const clients: (TestClient | { socket: Socket })[] = [];

      before(async () => {
        ({ gateways, redis } = await startBackend(store, { ...ENV, TRANSPORT: transport }));
        home = gateways[0]!;
        other = gateways[1] ?? home;
      });
      after(async () => {
        for (const c of clients) c.socket.close();
        for (const g of gateways ?? []) await g.stop();
        await redis?.stop();
      });

      it('unsubscribe takes the room out of a waiting session, counted once; the restore does not bring it back', async () => {
        const user = someone('ursula');
        const alice = await recoveringClient(home.url, { token: await token(user) });
        const live = await connectClient(other.url, { auth: { token: await token(user) } });
        clients.push(alice, live);
        for (const room of ['h:mine-u1', 'h:mine-u2']) assert.equal((await alice.socket.timeout(5000).emitWithAck('subscribe', room)).ok, true);
        assert.equal(((await live.subscribe('h:mine-u1')) as { ok: boolean }).ok, true);
        await dropAndWait(alice.socket, home);
        const answer = await control(other, '/v1/unsubscribe', { user, room: 'h:mine-u1' });
        assert.deepEqual([answer.unsubscribed, answer.waiting], [2, 1], JSON.stringify(answer));
        assert.deepEqual(await reconnect(alice.socket), { recovered: true });
        const listed = await (await fetch(`${other.url}/v1/users/${user}`, { headers: { authorization: `Bearer ${CONTROL_KEY}` } })).json();
        const restored = listed.connections.find((c: { client: string }) => c.client === alice.socket.id);
        assert.deepEqual(restored?.rooms.sort(), [`user:${user}`, 'h:mine-u2'].sort());
        await publish(other.url, { room: 'h:mine-u1', event: 'm', data: 'left' }, PUBLISH_KEY);
        await publish(other.url, { room: 'h:mine-u2', event: 'm', data: 'kept' }, PUBLISH_KEY);
        await waitFor('the message of the room it kept', () => alice.got.some((g) => g.data === 'kept'));
        assert.equal(alice.got.filter((g) => g.data === 'left').length, 0, 'nothing of the room it left');
      });

      it('subscribe puts a room in a waiting session, by its connection id: restored in it, with what was published since', async () => {
        const user = someone('sam');
        const c = await recoveringClient(home.url, { token: await token(user) });
        clients.push(c);
        assert.equal((await c.socket.timeout(5000).emitWithAck('subscribe', 'h:mine-s1')).ok, true);
        const sid = c.socket.id!;
        await dropAndWait(c.socket, home);
        const answer = await control(other, '/v1/subscribe', { client: sid, room: 'h:granted-s2' });
        assert.deepEqual([answer.subscribed, answer.waiting], [1, 1], JSON.stringify(answer));
        await publish(other.url, { room: 'h:granted-s2', event: 'm', data: 'since' }, PUBLISH_KEY);
        assert.deepEqual(await reconnect(c.socket), { recovered: true });
        await waitFor('what was published in the granted room while it waited', () => c.got.some((g) => g.room === 'h:granted-s2' && g.data === 'since'));
        await publish(other.url, { room: 'h:granted-s2', event: 'm', data: 'live' }, PUBLISH_KEY);
        await waitFor('then live', () => c.got.some((g) => g.data === 'live'));
        assert.deepEqual(c.got.filter((g) => g.room === 'h:granted-s2').map((g) => g.data), ['since', 'live']);
      });

      it('disconnect drops a waiting session, counted once: its client starts afresh', async () => {
        const user = someone('kim');
        const c = await recoveringClient(home.url, { token: await token(user) });
        clients.push(c);
        assert.equal((await c.socket.timeout(5000).emitWithAck('subscribe', 'h:mine-d')).ok, true);
        const sid = c.socket.id;
        await dropAndWait(c.socket, home);
        const answer = await control(other, '/v1/disconnect', { user });
        assert.deepEqual([answer.disconnected, answer.waiting], [1, 1], JSON.stringify(answer));
        assert.deepEqual(await reconnect(c.socket), { recovered: false });
        assert.notEqual(c.socket.id, sid);
      });

      it('revoke drops the waiting sessions holding a revoked token (by jti, and by user and time); a new token starts afresh', async () => {
        const byJti = someone('jo');
        const jti = randomBytes(8).toString('hex');
        const first = await recoveringClient(home.url, { token: await token(byJti, { jti }) });
        const byTime = someone('tim');
        const second = await recoveringClient(home.url, { token: await token(byTime, { iat: nowSeconds() - 100 }) });
        clients.push(first, second);
        for (const c of [first, second]) {
          assert.equal((await c.socket.timeout(5000).emitWithAck('subscribe', 'h:mine-r')).ok, true);
          await dropAndWait(c.socket, home);
        }
        const a1 = await control(other, '/v1/revoke', { jti });
        assert.deepEqual([a1.disconnected, a1.waiting], [1, 1], JSON.stringify(a1));
        const a2 = await control(other, '/v1/revoke', { user: byTime, issuedBefore: nowSeconds() - 50 });
        assert.deepEqual([a2.disconnected, a2.waiting], [1, 1], JSON.stringify(a2));
        first.socket.auth = { token: await token(byJti, { jti: `${jti}-new` }) };
        second.socket.auth = { token: await token(byTime) };
        assert.deepEqual(await reconnect(first.socket), { recovered: false });
        assert.deepEqual(await reconnect(second.socket), { recovered: false });
      });
    });
  }
}
