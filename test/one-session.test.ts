import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { rawSocket } from './helpers/raw.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
const SECRET = 'test-jwt-secret-0123456789-abcdefghij';

const token = (sub: string) =>
  new SignJWT({ sub, rooms: ['*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(Math.floor(Date.now() / 1000) + 3600)
    .sign(new TextEncoder().encode(SECRET));

/**
 * Socket.IO makes a session of every CONNECT packet; herald allows one per namespace per
 * Engine.IO connection. An attacker batching CONNECTs gets the connection closed, with no
 * session, no presence entry and no delivery to show for it.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`one session per Engine.IO connection (TRANSPORT=${transport})`, () => {
    let gw: Gateway;
    const clients: TestClient[] = [];

    before(async () => {
      gw = await startGateway({
        env: { TRANSPORT: transport, PUBLISH_KEYS: KEY, JWT_SECRET: SECRET, PRESENCE_ROOMS: 'user:*', CONNECT_BURST_PER_IP: '1000' },
      });
    });
    after(async () => {
      for (const c of clients) c.close();
      await gw.stop();
    });

    const connections = async () => (await getJson(`${gw.url}/readyz`)).body.connections as number;
    const presenceOf = async (room: string) =>
      (await fetch(`${gw.url}/v1/rooms/${room}/presence`, { headers: { authorization: `Bearer ${KEY}` } }).then((r) => r.json())) as {
        connections: number;
        users: string[];
      };

    it('closes a WebSocket that sends a burst of CONNECT frames; only one honest session per user counts', async () => {
      const honest = await connectClient(gw.url, { auth: { token: await token('mallory') } });
      clients.push(honest);
      const before = await connections();

      const raw = await rawSocket(gw.url);
      const connect = `40${JSON.stringify({ token: await token('mallory') })}`;
      for (let i = 0; i < 200; i++) raw.send(connect);
      assert.ok((await raw.closed) > 0, 'the connection is closed');
      const answers = raw.frames.filter((f) => f.startsWith('40{'));
      assert.ok(answers.length <= 1, `at most the first CONNECT is answered, got ${answers.length}`);

      await waitFor('the attacker sessions to be gone', async () => (await connections()) === before);
      const sent = await publish(gw.url, { room: 'user:mallory', event: 'dm', data: 1 }, KEY);
      assert.equal(sent.status, 200);
      await honest.waitFor('the direct message', (r) => r.event === 'dm');
      assert.equal(honest.received.filter((r) => r.event === 'dm').length, 1);
      const presence = await presenceOf('user:mallory');
      assert.deepEqual([presence.connections, presence.users], [1, ['mallory']], 'presence counts the honest connection alone');
      const metrics = await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } }).then((r) => r.text());
      assert.match(metrics, /herald_auth_failures_total\{code="duplicate_connect"\} [1-9]/);
    });

    it('closes a WebSocket that sends a CONNECT again after its session was made, and counts it', async () => {
      // When a burst's CONNECTs arrive after the first one's session is made (they came in several
      // reads), Socket.IO closes the connection itself; that close is counted all the same.
      const metric = async () => {
        const text = await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } }).then((r) => r.text());
        return Number(/herald_auth_failures_total\{code="duplicate_connect"\} (\d+)/.exec(text)?.[1] ?? 0);
      };
      const counted = await metric();
      const before = await connections();
      const raw = await rawSocket(gw.url);
      raw.send(`40${JSON.stringify({ token: await token('oscar') })}`);
      assert.ok((await raw.next((f) => f.startsWith('40{')))?.includes('"sid"'), 'the first CONNECT makes a session');
      raw.send(`40${JSON.stringify({ token: await token('oscar') })}`);
      assert.ok((await raw.closed) > 0, 'the connection is closed');
      await waitFor('the session to be gone', async () => (await connections()) === before);
      assert.equal(await metric(), counted + 1);
    });

    it('closes a long-polling connection whose one POST carries hundreds of CONNECT packets', async () => {
      const before = await connections();
      const base = `${gw.url}/socket.io/?EIO=4&transport=polling`;
      const open = await fetch(base).then((r) => r.text());
      const sid = (JSON.parse(open.slice(1)) as { sid: string }).sid;
      const connect = `40${JSON.stringify({ token: await token('mallory') })}`;
      // 300 tokens fit under CLIENT_MAX_BYTES (64 KiB); anonymous `40` frames would fit thousands.
      const body = Array.from({ length: 300 }, () => connect).join('\x1e');
      const post = await fetch(`${base}&sid=${sid}`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
      // Engine.IO answers the POST itself; the connection behind it is closed.
      assert.deepEqual([post.status, await post.text()], [200, 'ok']);
      await waitFor('the polling session to be closed', async () => {
        const poll = await fetch(`${base}&sid=${sid}`);
        const text = await poll.text();
        // 400 "Session ID unknown" once closed, or a close packet ("1") still pending.
        return poll.status === 400 || text.split('\x1e').includes('1');
      });
      assert.equal(await connections(), before, 'no session is left from the batch');
    });

    it('lets a client retry with a fresh token on the same connection after a refusal', async () => {
      const raw = await rawSocket(gw.url);
      raw.send(`40${JSON.stringify({ token: 'not-a-token' })}`);
      assert.ok((await raw.next((f) => f.startsWith('44')))?.includes('unauthorized'));
      raw.send(`40${JSON.stringify({ token: await token('erin') })}`);
      assert.ok((await raw.next((f) => f.startsWith('40{')))?.includes('"sid"'), 'the retry connects');
      assert.ok(raw.isOpen());
      raw.close();
    });
  });
}
