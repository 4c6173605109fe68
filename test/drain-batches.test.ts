import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { Server, type Socket } from 'socket.io';
import { io as connect, type Socket as ClientSocket } from 'socket.io-client';
import { closeConnectionsInBatches } from '../src/lifecycle/lifecycle.js';
import { waitFor } from './helpers/wait.js';

/**
 * The drain's batches (src/lifecycle/lifecycle.ts) on a real Socket.IO server with real clients,
 * when the event loop is busy: a tick that comes after the deadline must still close every socket
 * left through the drain's `close` (herald's sends each client its last offset first), not leave
 * them to the server's close. Seen at 100,000 fans (`npm run bench:scale`): a drained replica's
 * event loop lagged by seconds, its last batches never ran, and those clients came back without
 * the offset that recovers them on any replica.
 */
describe('drain batches', () => {
  const http = createServer();
  const io = new Server(http);
  const clients: ClientSocket[] = [];
  after(async () => {
    for (const c of clients) c.close();
    await io.close();
  });

  it('a busy event loop past the deadline: every socket still goes through close, none left over', async () => {
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const { port } = http.address() as AddressInfo;
    const count = 30;
    const reasons: string[] = [];
    for (let i = 0; i < count; i++) {
      const c = connect(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false, forceNew: true });
      c.on('disconnect', (reason) => reasons.push(reason));
      clients.push(c);
    }
    await waitFor('clients connected', () => io.of('/').sockets.size === count && clients.every((c) => c.connected));

    const closedBy: string[] = [];
    const close = (socket: Socket) => {
      closedBy.push(socket.id);
      socket.conn.close();
    };
    // The first batch goes at once; then the event loop is held past the whole 300 ms drain.
    const blocked = new Promise<void>((resolve) =>
      setTimeout(() => {
        const until = Date.now() + 600;
        while (Date.now() < until);
        resolve();
      }, 20),
    );
    const closed = await closeConnectionsInBatches(io, 300, { close });
    await blocked;
    assert.equal(closed, count, 'every socket counted as closed by the batches');
    assert.equal(new Set(closedBy).size, count, 'every socket went through the drain\'s close');
    await waitFor('every client to see its connection close', () => reasons.length === count);
    assert.ok(reasons.every((r) => r === 'transport close'), reasons.join(','));
  });
});
