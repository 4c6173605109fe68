import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Server, Socket } from 'socket.io';
import { io as connect, type Socket as ClientSocket } from 'socket.io-client';
import type { PublishBatcher } from '../src/transport/uws-batch.js';
import { startUwsSocketIo, type UwsSocketIo } from './helpers/uws-socketio.js';
import { onceWithin } from './helpers/wait.js';

/**
 * Room broadcasts batched on uWS (BROADCAST_BATCH_MS): a real Socket.IO server on uWS with herald's
 * adapter and uWS delivery and a window long enough that what the tests publish in one go is certainly queued.
 * Each test publishes, changes membership or writes directly while broadcasts wait, then sends
 * every client a direct `end`: uWS sends a subscriber's topic messages ahead of a direct write, so
 * what a client holds when `end` arrives is all it will get of them.
 */
const WINDOW_MS = 300;

interface Peer {
  client: ClientSocket;
  server: Socket;
  got: unknown[];
  /** Resolves with what the client received before the server's `end`. */
  ended: Promise<unknown[]>;
}

describe('room broadcasts batched on uWS', () => {
  let io: Server;
  let batcher: PublishBatcher;
  let url: string;
  let server: UwsSocketIo;
  const peers: Peer[] = [];

  before(async () => {
    server = await startUwsSocketIo({ batchMs: WINDOW_MS });
    ({ io, url } = server);
    batcher = server.delivery.batcher;
  });
  after(() => {
    for (const p of peers) p.client.close();
    server.close();
  });

  async function peer(transports: string[], onServerSocket?: (s: Socket) => void): Promise<Peer> {
    const serverSide = onceWithin<[Socket]>(io, 'connection', 'the server-side socket');
    const client = connect(url, { transports, forceNew: true, reconnection: false });
    const got: unknown[] = [];
    client.on('m', (x: unknown) => got.push(x));
    const ended = onceWithin(client, 'end', 'the direct end marker').then(() => [...got]);
    const [server] = await serverSide;
    onServerSocket?.(server);
    await onceWithin(client, 'connect', 'client connect');
    const p = { client, server, got, ended };
    peers.push(p);
    return p;
  }

  it('keeps each connection\'s order when room broadcasts are queued between direct writes', async () => {
    const a = await peer(['websocket']);
    a.server.join('order');
    io.to('order').emit('m', 1);
    io.to('order').emit('m', 2);
    assert.ok(batcher.pending, 'the second broadcast waits for the batch');
    io.to(a.server.id).emit('m', 3); // the socket's own id room: a direct write
    io.to('order').emit('m', 4);
    assert.ok(batcher.pending, 'a broadcast after the direct write waits again');
    a.server.emit('m', 5);
    a.server.emit('end');
    assert.deepEqual(await a.ended, [1, 2, 3, 4, 5]);
  });

  it('delivers a queued broadcast to the members at publish time, whoever joins or leaves before it goes out', async () => {
    const [a, b, c] = [await peer(['websocket']), await peer(['websocket']), await peer(['websocket'])];
    a.server.join('members');
    c.server.join('members');
    io.to('members').emit('m', 'x1');
    io.to('members').emit('m', 'x2');
    assert.ok(batcher.pending);
    c.server.leave('members');
    io.to('members').emit('m', 'x3');
    assert.ok(batcher.pending);
    b.server.join('members');
    io.to('members').emit('m', 'x4');
    assert.ok(batcher.pending);
    for (const p of [a, b, c]) p.server.emit('end');
    assert.deepEqual(await a.ended, ['x1', 'x2', 'x3', 'x4']);
    assert.deepEqual(await b.ended, ['x4'], 'joined after x3 was published');
    assert.deepEqual(await c.ended, ['x1', 'x2'], 'left after x2 was published');
  });

  it('delivers a broadcast queued while a member upgrades from polling to WebSocket exactly once', async () => {
    let queuedDuringUpgrade = false;
    let upgraded: Promise<unknown> | undefined;
    const d = await peer(['polling', 'websocket'], (s) => {
      s.join('upgrade');
      s.conn.once('upgrading', () => {
        io.to('upgrade').emit('m', 'p1');
        io.to('upgrade').emit('m', 'p2');
        queuedDuringUpgrade = batcher.pending;
      });
      upgraded = onceWithin(s.conn, 'upgrade', 'the upgrade to WebSocket');
    });
    await upgraded;
    assert.ok(queuedDuringUpgrade, 'p2 was still queued when the upgrade began');
    assert.equal(d.server.conn.transport.name, 'websocket');
    d.server.emit('end');
    assert.deepEqual(await d.ended, ['p1', 'p2']);
  });
});
