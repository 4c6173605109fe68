import assert from 'node:assert/strict';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createDelta } from 'fossil-delta';
import { Server, type Socket as ServerSocket } from 'socket.io';
import { io, type Socket } from 'socket.io-client';
import { HeraldClient } from '../client/src/index.js';
import { deltaString } from '../src/history/delta.js';
import { onceWithin, waitFor } from './helpers/wait.js';

// The client module (client/) against a Socket.IO server that says what the test makes it say:
// deltas on a base the client does not have, corrupt deltas, resets, refused subscribes. The
// module must never hand a handler anything but the whole payloads, and must re-subscribe from
// the last message it holds. (Against real herald replicas: test/delta.test.ts and
// test/client-browser.test.ts.)

const utf8 = new TextEncoder();
const ROOM = 'scores:1';

function delta(from: unknown, to: unknown): string {
  return deltaString(createDelta(utf8.encode(JSON.stringify(from)), utf8.encode(JSON.stringify(to))));
}

describe('client module against a server that sends wrong bases', () => {
  let http: HttpServer;
  let server: Server;
  let url: string;
  /** Every subscribe the server received, with the socket it came on. */
  const subscribes: { socket: ServerSocket; arg: Record<string, unknown> }[] = [];
  const clients: Socket[] = [];

  before(async () => {
    http = createServer();
    server = new Server(http);
    server.on('connection', (socket) => {
      socket.on('subscribe', (arg: Record<string, unknown>, ack: (a: object) => void) => {
        subscribes.push({ socket, arg });
        if (arg.room === 'refused:1') ack({ ok: false, error: { code: 'forbidden', message: 'Not allowed.' } });
        else ack({ ok: true, room: arg.room, ...(arg.since ? { recovered: arg.since !== 'gone-0' } : {}) });
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const c of clients) c.close();
    await new Promise((resolve) => server.close(resolve));
  });

  async function connect(): Promise<{ herald: HeraldClient; got: { data: unknown; id: string }[]; resets: string[]; server: () => ServerSocket }> {
    const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    clients.push(socket);
    await onceWithin(socket, 'connect', 'connect');
    const resets: string[] = [];
    const herald = new HeraldClient(socket, { onReset: (room, reason) => resets.push(`${room} ${reason}`) });
    const got: { data: unknown; id: string }[] = [];
    herald.on('score', (data, meta) => got.push({ data, id: meta.id }));
    await herald.subscribe(ROOM, { delta: 'fossil' });
    const mine = subscribes.findLast((s) => s.socket.id === socket.id)!;
    return { herald, got, resets, server: () => mine.socket };
  }

  it('applies a delta on the last message held, and hands the handler the whole payload', async () => {
    const { herald, got, server: s } = await connect();
    const v1 = { home: 0, away: 0, minute: 1, venue: 'Riverside Stadium' };
    const v2 = { ...v1, home: 1, minute: 2 };
    s().emit('score', v1, { room: ROOM, id: '100-0', ts: 1 });
    s().emit('score', delta(v1, v2), { room: ROOM, id: '101-0', ts: 2, base: '100-0' });
    await waitFor('two messages', () => got.length === 2);
    assert.deepEqual(got, [{ data: v1, id: '100-0' }, { data: v2, id: '101-0' }]);
    assert.equal(herald.stats.deltas, 1);
    assert.equal(herald.position(ROOM), '101-0');
  });

  it('never applies a delta whose base is not the last message held, and re-subscribes from that message', async () => {
    const { herald, got, server: s } = await connect();
    const v1 = { home: 0, away: 0, minute: 1, venue: 'Riverside Stadium' };
    const v2 = { ...v1, home: 1, minute: 2 };
    const v3 = { ...v2, away: 1, minute: 3 };
    const before = subscribes.length;
    s().emit('score', v1, { room: ROOM, id: '200-0', ts: 1 });
    // A forged base: a message it never had (201-0 is missing).
    s().emit('score', delta(v2, v3), { room: ROOM, id: '202-0', ts: 3, base: '201-0' });
    await waitFor('a re-subscribe', () => subscribes.length > before);
    assert.deepEqual(subscribes.at(-1)!.arg, { room: ROOM, delta: 'fossil', since: '200-0' });
    assert.deepEqual(got, [{ data: v1, id: '200-0' }]);
    assert.equal(herald.stats.mismatches, 1);
    // What the re-subscribe replays comes whole; a replayed duplicate is dropped.
    s().emit('score', v1, { room: ROOM, id: '200-0', ts: 1 });
    s().emit('score', v2, { room: ROOM, id: '201-0', ts: 2 });
    s().emit('score', v3, { room: ROOM, id: '202-0', ts: 3 });
    await waitFor('three messages', () => got.length === 3);
    assert.deepEqual(got.map((g) => g.id), ['200-0', '201-0', '202-0']);
    assert.equal(herald.stats.duplicates, 1);
  });

  it('never applies a delta that names the right base but does not fit it (a corrupt or forged delta)', async () => {
    const { herald, got, server: s } = await connect();
    const v1 = { home: 0, away: 0, minute: 1, venue: 'Riverside Stadium' };
    const other = { home: 5, away: 5, minute: 90, venue: 'Elsewhere Arena, South' };
    const before = subscribes.length;
    s().emit('score', v1, { room: ROOM, id: '300-0', ts: 1 });
    // Computed against another payload: the checksum of the result does not match.
    s().emit('score', delta(other, { ...other, minute: 91 }), { room: ROOM, id: '301-0', ts: 2, base: '300-0' });
    s().emit('score', 'not a delta', { room: ROOM, id: '302-0', ts: 3, base: '301-0' });
    await waitFor('a re-subscribe', () => subscribes.length > before);
    assert.deepEqual(got, [{ data: v1, id: '300-0' }]);
    assert.ok(herald.stats.mismatches >= 1);
    assert.equal(subscribes.at(-1)!.arg.since, '300-0');
  });

  it('on herald:reset tells the app and re-subscribes from the offset the reset gives', async () => {
    const { resets, server: s } = await connect();
    const before = subscribes.length;
    s().emit('score', { minute: 1 }, { room: ROOM, id: '400-0', ts: 1 });
    s().emit('herald:reset', { room: ROOM, offset: '450-0', code: 'history_lost' });
    await waitFor('a re-subscribe', () => subscribes.length > before);
    assert.deepEqual(subscribes.at(-1)!.arg, { room: ROOM, delta: 'fossil', since: '450-0' });
    assert.deepEqual(resets, [`${ROOM} reset`]);
  });

  it('after a reconnect re-subscribes every room with since, and reports a room that could not be recovered', async () => {
    const socket = io(url, { transports: ['websocket'], forceNew: true, reconnectionDelay: 10 });
    clients.push(socket);
    const resets: string[] = [];
    const herald = new HeraldClient(socket, { onReset: (room, reason) => resets.push(`${room} ${reason}`) });
    await herald.subscribe('scores:a', { delta: 'fossil', last: 1 });
    await herald.subscribe('scores:b', { since: 'gone-0' });
    const first = subscribes.findLast((s) => s.arg.room === 'scores:a')!.socket;
    first.emit('score', { minute: 1 }, { room: 'scores:a', id: '500-0', ts: 1 });
    await waitFor('position', () => herald.position('scores:a') === '500-0');
    const before = subscribes.length;
    first.conn.close(); // the connection drops; socket.io-client reconnects on its own
    await waitFor('two re-subscribes', () => subscribes.length >= before + 2);
    const again = subscribes.slice(before).map((s) => s.arg);
    assert.deepEqual(again.find((a) => a.room === 'scores:a'), { room: 'scores:a', delta: 'fossil', since: '500-0' });
    assert.deepEqual(again.find((a) => a.room === 'scores:b'), { room: 'scores:b', since: 'gone-0' });
    await waitFor('the reset of scores:b', () => resets.includes('scores:b not_recovered'));
  });

  it('rejects a refused subscribe with the server\'s code and keeps nothing of it', async () => {
    const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    clients.push(socket);
    const herald = new HeraldClient(socket);
    await assert.rejects(herald.subscribe('refused:1'), (err: Error & { code?: string }) => err.code === 'forbidden');
    assert.equal(herald.position('refused:1'), undefined);
  });
});
