import assert from 'node:assert/strict';
import type { Socket as NetSocket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Server, Socket } from 'socket.io';
import { io as connect, type Socket as ClientSocket } from 'socket.io-client';
import { OUTBOX_FLUSH_BYTES, outboxBytes } from '../src/transport/uws-outbox.js';
import { startUwsSocketIo, type UwsSocketIo } from './helpers/uws-socketio.js';
import { onceWithin } from './helpers/wait.js';

/**
 * A connection's direct writes of one turn go out in one write (src/transport/uws-outbox.ts): a
 * real Socket.IO server on uWS with herald's adapter and uWS delivery, real socket.io-clients over
 * WebSocket. The server writes from a timer, outside any uWS callback (where uWS corks by itself),
 * as herald does after waiting on Redis. Room publishes are not batched here (BROADCAST_BATCH_MS 0).
 */
interface Peer {
  client: ClientSocket;
  server: Socket;
  got: unknown[];
  /** The client's TCP socket's reads since it connected. */
  reads: () => number;
  /** Resolves with what the client received before the server's `end`. */
  ended: Promise<unknown[]>;
}

const inNextTimer = (fn: () => void) => new Promise<void>((resolve) => setTimeout(() => (fn(), resolve()), 1));

describe('direct writes on uWS, one write per connection per turn', () => {
  let io: Server;
  let url: string;
  let server: UwsSocketIo;
  const peers: Peer[] = [];

  before(async () => {
    server = await startUwsSocketIo({ batchMs: 0 });
    ({ io, url } = server);
  });
  after(() => {
    for (const p of peers) p.client.close();
    server.close();
  });

  async function peer(): Promise<Peer> {
    const serverSide = onceWithin<[Socket]>(io, 'connection', 'the server-side socket');
    const client = connect(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    const got: unknown[] = [];
    client.on('m', (x: unknown) => got.push(x));
    const ended = onceWithin(client, 'end', 'the direct end marker').then(() => [...got]);
    const [server] = await serverSide;
    await onceWithin(client, 'connect', 'client connect');
    // socket.io-client on Node runs `ws`, whose TCP socket this counts the reads of.
    const tcp = (client.io.engine.transport as unknown as { ws: { _socket: NetSocket } }).ws._socket;
    let reads = 0;
    tcp.on('data', () => (reads += 1));
    const p = { client, server, got, reads: () => reads, ended };
    peers.push(p);
    return p;
  }

  it('sends what one turn wrote to a connection in one write', async () => {
    const a = await peer();
    await inNextTimer(() => {
      for (let i = 0; i < 20; i++) a.server.emit('m', i);
      a.server.emit('end');
    });
    assert.deepEqual(await a.ended, Array.from({ length: 20 }, (_, i) => i));
    // One write of 21 small frames on loopback is one read; 21 writes, as uWS makes outside its
    // own callbacks, are as many reads unless the client fell behind.
    assert.equal(a.reads(), 1, `21 frames of one turn arrived in ${a.reads()} reads`);
  });

  it('keeps a connection\'s order when a room publish comes between its direct writes', async () => {
    const [a, b] = [await peer(), await peer()];
    a.server.join('order');
    b.server.join('order');
    await inNextTimer(() => {
      a.server.emit('m', 'a1');
      io.to('order').emit('m', 'r1'); // a uWS topic publish: reaches both at once
      a.server.emit('m', 'a2');
      b.server.emit('m', 'b1');
      io.to('order').emit('m', 'r2');
      a.server.emit('end');
      b.server.emit('end');
    });
    assert.deepEqual(await a.ended, ['a1', 'r1', 'a2', 'r2']);
    assert.deepEqual(await b.ended, ['r1', 'b1', 'r2']);
  });

  it(`writes a connection's waiting bytes at once past OUTBOX_FLUSH_BYTES (${OUTBOX_FLUSH_BYTES})`, async () => {
    const a = await peer();
    const big = 'x'.repeat(Math.ceil(OUTBOX_FLUSH_BYTES / 2) + 100);
    const waiting: number[] = [];
    await inNextTimer(() => {
      a.server.emit('m', big);
      waiting.push(outboxBytes(a.server.conn.transport));
      a.server.emit('m', big); // past the bound: both go out now
      waiting.push(outboxBytes(a.server.conn.transport));
      a.server.emit('m', 'after');
      waiting.push(outboxBytes(a.server.conn.transport));
      a.server.emit('end');
    });
    assert.ok(waiting[0]! > big.length, `the first waited (${waiting[0]} bytes)`);
    assert.equal(waiting[1], 0, 'the second took the connection past the bound: both were written');
    assert.ok(waiting[2]! > 0 && waiting[2]! < 100, `the next one waits again (${waiting[2]} bytes)`);
    assert.deepEqual(await a.ended, [big, big, 'after']);
  });

  it('writes what waits before the connection is closed', async () => {
    const a = await peer();
    const reason = onceWithin<[string]>(a.client, 'disconnect', 'the client disconnected');
    await inNextTimer(() => {
      a.server.emit('m', 'last words');
      a.server.disconnect(true);
    });
    assert.equal((await reason)[0], 'io server disconnect');
    assert.deepEqual(a.got, ['last words']);
  });
});
