import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { Server, type Socket } from 'socket.io';
import { io as connect, Manager, type Socket as ClientSocket } from 'socket.io-client';
import { releaseHandshake } from '../src/realtime/handshake.js';
import type { us_listen_socket } from 'uWebSockets.js';
import { loadUws } from '../src/transport/index.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { rawSocket } from './helpers/raw.js';
import { onceWithin, waitFor } from './helpers/wait.js';

const TOKEN = 'not-a-real-token-but-secret-0123456789';

/** A real Socket.IO server on `kind`, releasing each default-namespace connection's handshake like herald does. */
async function serve(kind: 'node' | 'uws') {
  const io = new Server();
  const released: Socket[] = [];
  io.on('connection', (socket) => {
    releaseHandshake(socket);
    released.push(socket);
    socket.on('echo', (x: unknown, ack: (x: unknown) => void) => ack(x));
  });
  // A second namespace, multiplexed over the same connection by the client below.
  io.of('/other').on('connection', (socket) => socket.emit('hi', socket.handshake.address));
  if (kind === 'node') {
    const http = createServer();
    io.attach(http);
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    return { io, released, url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, close: () => io.close() };
  }
  const loaded = loadUws();
  if (!('uws' in loaded)) throw loaded.error;
  const app = loaded.uws.App();
  io.attachApp(app);
  const token = await new Promise<us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (t) => (t ? resolve(t) : reject(new Error('uWS did not listen')))));
  const port = loaded.uws.us_socket_local_port(token);
  return {
    io,
    released,
    url: `http://127.0.0.1:${port}`,
    close: () => {
      io.close();
      loaded.uws.us_listen_socket_close(token);
    },
  };
}

describe('per-connection state', () => {
  const closers: (() => unknown)[] = [];
  after(async () => {
    for (const c of closers.reverse()) await c();
  });

  for (const kind of ['node', 'uws'] as const) {
    it(`lets go of the upgrade request, the headers and the auth token after connect, and the connection works on (${kind})`, async () => {
      const server = await serve(kind);
      closers.push(server.close);
      for (const transports of [['websocket'], ['polling', 'websocket']]) {
        const manager = new Manager(server.url, { transports, reconnection: false, forceNew: true, extraHeaders: { 'x-forwarded-for': '203.0.113.7', 'x-secret': 'header-secret' } });
        closers.push(() => manager.engine?.close());
        const client: ClientSocket = manager.socket('/', { auth: { token: TOKEN } });
        await onceWithin(client, 'connect', 'connect');
        const socket = server.released.find((s) => s.id === client.id)!;
        assert.ok(socket, 'the server saw the connection');
        assert.equal(socket.request, undefined, 'the upgrade request is released');
        assert.deepEqual(socket.handshake.headers, { 'x-forwarded-for': '203.0.113.7' }, 'only the forwarded-for header is kept');
        assert.deepEqual(socket.handshake.auth, {});
        assert.deepEqual(socket.handshake.query, {});
        assert.ok(!JSON.stringify(socket.handshake).includes(TOKEN), 'the token is not kept');
        assert.ok(socket.handshake.address.length > 0 && socket.handshake.issued > 0, JSON.stringify(socket.handshake));

        if (transports.length === 2) await waitFor('the upgrade to WebSocket', () => manager.engine.transport.name === 'websocket');
        assert.equal(await client.timeout(5000).emitWithAck('echo', 'still answering'), 'still answering');
        // Another namespace over the same connection builds its handshake after the release.
        const other = manager.socket('/other');
        const [address] = await onceWithin<[string]>(other, 'hi', 'the second namespace');
        assert.ok(address.length > 0);
        assert.equal(await client.timeout(5000).emitWithAck('echo', 'and after'), 'and after');
        client.close();
        other.close();
      }
    });
  }
});

describe('client events through the gateway', () => {
  let gw: Gateway;
  after(() => gw?.stop());

  it('answers every event with an acknowledgement, including one sent without arguments', async () => {
    gw = await startGateway({ env: { PUBLIC_ROOMS: '*' } });
    const s = await rawSocket(gw.url, { connect: true });
    s.send('421["subscribe"]');
    assert.match((await s.next((f) => f.startsWith('431')))!, /^431\[\{"ok":false,"error":\{"code":"invalid_room"/);
    s.send('422["nonsense","x"]');
    assert.match((await s.next((f) => f.startsWith('432')))!, /^432\[\{"ok":false,"error":\{"code":"unknown_event"/);
    s.send('423["subscribe",{"room":"news"},"extra"]');
    assert.equal(await s.next((f) => f.startsWith('433')), '433[{"ok":true,"room":"news"}]');
    s.send('42["subscribe","quiet"]');
    s.send('424["unsubscribe","quiet"]');
    assert.equal(await s.next((f) => f.startsWith('434')), '434[{"ok":true,"room":"quiet"}]');
    s.close();
    // A plain client on the same replica is untouched by all of the above.
    const c = connect(gw.url, { transports: ['websocket'], reconnection: false, forceNew: true });
    await onceWithin(c, 'connect', 'connect');
    assert.deepEqual(await c.timeout(5000).emitWithAck('subscribe', 'news'), { ok: true, room: 'news' });
    c.close();
  });
});
