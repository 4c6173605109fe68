import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { io as connect, type Socket } from 'socket.io-client';
import { publish } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { startRedisCluster, type RedisCluster } from './helpers/redis-cluster.js';
import { startRelay, type Relay } from './helpers/relay.js';
import { onceWithin, waitFor } from './helpers/wait.js';
import { rawSocket } from './helpers/raw.js';
import { sessionKey } from '../src/recovery/store.js';

const KEY = 'recovery-sessions-key-0123456789';
const SECRET = 'recovery-sessions-jwt-secret-0123456789';

const token = (sub: string, expInSeconds = 3600) =>
  new SignJWT({ sub, rooms: ['team:*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(Math.floor(Date.now() / 1000) + expInSeconds)
    .sign(new TextEncoder().encode(SECRET));

/** A plain socket.io-client that records `m` events; reconnects only when the test says so. */
async function client(url: string, auth?: Record<string, unknown>) {
  const socket = connect(url, { transports: ['websocket'], forceNew: true, reconnection: false, auth });
  const got: { room: string; data: unknown; id: string }[] = [];
  socket.on('m', (data: unknown, meta: { room: string; id: string }) => got.push({ room: meta.room, data, id: meta.id }));
  await onceWithin(socket, 'connect', 'connect');
  return { socket, got };
}

/** Drops the connection as a network failure would (the server sees "transport close"), and waits until it is gone. */
async function drop(socket: Socket): Promise<void> {
  const gone = onceWithin(socket, 'disconnect', 'disconnect');
  (socket.io.engine as unknown as { close(): void }).close();
  await gone;
}

/** Reconnects a dropped client with what it kept (its session id and last offset); resolves with `recovered`, or the refusal. */
async function reconnect(socket: Socket): Promise<{ recovered: boolean } | { refused: string }> {
  const outcome = Promise.race([
    onceWithin(socket, 'connect', 'reconnect').then(() => ({ recovered: socket.recovered })),
    onceWithin<[Error & { data?: { code: string } }]>(socket, 'connect_error', 'connect_error').then(([e]) => ({ refused: e.data?.code ?? e.message })),
  ]);
  socket.connect();
  return outcome;
}

const subscribe = (socket: Socket, room: string) => socket.timeout(5000).emitWithAck('subscribe', room);

describe('connection recovery: sessions', () => {
  let redis: RedisProcess;
  let gateways: Gateway[];
  let relay: Relay;
  const base = { PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'h:*', PUBLIC_ROOMS: 'plain:*,h:*', JWT_SECRET: SECRET, JWT_CLOCK_SKEW_SECONDS: '0', ALLOW_ANONYMOUS: 'true' };

  before(async () => {
    redis = await startRedis();
    gateways = [
      await startGateway({ env: { ...base, REDIS_URL: redis.url } }),
      await startGateway({ env: { ...base, REDIS_URL: redis.url } }),
    ];
    relay = await startRelay(gateways[0]!.port);
  });
  after(async () => {
    await relay?.close();
    for (const g of gateways ?? []) await g.stop();
    await redis?.stop();
  });

  it('a session in a room without history gets its rooms back but recovered: false; one in history rooms only is recovered', async () => {
    const mixed = await client(gateways[0]!.url);
    const pure = await client(gateways[0]!.url);
    for (const room of ['plain:1', 'h:1']) assert.equal((await subscribe(mixed.socket, room)).ok, true);
    assert.equal((await subscribe(pure.socket, 'h:1')).ok, true);
    const sid = mixed.socket.id;
    await Promise.all([drop(mixed.socket), drop(pure.socket)]);
    assert.deepEqual(await reconnect(mixed.socket), { recovered: false });
    assert.deepEqual(await reconnect(pure.socket), { recovered: true });
    // Never subscribed again, yet both rooms deliver to it.
    await publish(gateways[1]!.url, { room: 'plain:1', event: 'm', data: 'p' }, KEY);
    await publish(gateways[1]!.url, { room: 'h:1', event: 'm', data: 'h' }, KEY);
    await waitFor('both rooms delivered', () => mixed.got.filter((g) => g.data === 'p' || g.data === 'h').length === 2);
    await waitFor('the history room delivered', () => pure.got.some((g) => g.data === 'h'));
    assert.equal(mixed.socket.id, sid, 'its socket id is restored too');
    mixed.socket.close();
    pure.socket.close();
  });

  it('a session id works once: a reused or forged one starts a fresh session', async () => {
    const c = await client(gateways[0]!.url);
    assert.equal((await subscribe(c.socket, 'h:2')).ok, true);
    await drop(c.socket);
    const pid = (c.socket as unknown as { _pid: string })._pid;
    const offset = (c.socket as unknown as { _lastOffset: string })._lastOffset;
    assert.deepEqual(await reconnect(c.socket), { recovered: true });
    // The same session id again, from another client (as a leak would give it).
    const reuse = await client(gateways[1]!.url, { pid, offset });
    assert.equal(reuse.socket.recovered, false);
    assert.notEqual(reuse.socket.id, c.socket.id);
    const forged = await client(gateways[1]!.url, { pid: 'A'.repeat(20), offset });
    assert.equal(forged.socket.recovered, false);
    // Neither got into the room.
    await publish(gateways[0]!.url, { room: 'h:2', event: 'm', data: 'after' }, KEY);
    await waitFor('the owner receives it', () => c.got.some((g) => g.data === 'after'));
    await publish(gateways[0]!.url, { room: 'plain:marker', event: 'm', data: 'end' }, KEY);
    assert.equal(reuse.got.length + forged.got.length, 0);
    for (const s of [c, reuse, forged]) s.socket.close();
  });

  it("another user's token cannot restore a session, nor use it up: its owner restores it after; the owner's expired token is refused", async () => {
    const alice = await client(gateways[0]!.url, { token: await token('alice') });
    assert.equal((await subscribe(alice.socket, 'h:7')).ok, true);
    const sid = alice.socket.id;
    await drop(alice.socket);
    const pid = (alice.socket as unknown as { _pid: string })._pid;
    const offset = (alice.socket as unknown as { _lastOffset: string })._lastOffset;
    const mallory = connect(gateways[1]!.url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { token: await token('mallory'), pid, offset } });
    const [err] = await onceWithin<[Error & { data?: { code: string } }]>(mallory, 'connect_error', 'refusal');
    assert.equal(err.data?.code, 'forbidden');
    mallory.close();
    assert.deepEqual(await reconnect(alice.socket), { recovered: true }, 'the refused restore left the session to alice');
    assert.equal(alice.socket.id, sid);

    const bob = await client(gateways[0]!.url, { token: await token('bob', 2) });
    assert.equal((await subscribe(bob.socket, 'team:8')).ok, true);
    await drop(bob.socket);
    await waitFor("bob's token to expire", () => expired(bob.socket), 5000);
    assert.deepEqual(await reconnect(bob.socket), { refused: 'token_expired' });
    alice.socket.close();
    bob.socket.close();
  });

  it('of two restores of one session at once, one gets it and the other a fresh socket', async () => {
    const owner = await client(gateways[0]!.url, { token: await token('carol') });
    assert.equal((await subscribe(owner.socket, 'h:9')).ok, true);
    const sid = owner.socket.id;
    await drop(owner.socket);
    const pid = (owner.socket as unknown as { _pid: string })._pid;
    const offset = (owner.socket as unknown as { _lastOffset: string })._lastOffset;
    const auth = JSON.stringify({ token: await token('carol'), pid, offset });
    const raws = await Promise.all(gateways.map((g) => rawSocket(g.url)));
    for (const raw of raws) raw.send(`40${auth}`);
    const answers = await Promise.all(raws.map((raw) => raw.next((f) => f.startsWith('40') || f.startsWith('44'))));
    for (const raw of raws) raw.close();
    const sessions = answers.map((a) => JSON.parse(a!.slice(2)) as { sid: string; pid: string });
    assert.equal(sessions.filter((x) => x.sid === sid && x.pid === pid).length, 1, `one restore gets the session whole: ${answers.join(' | ')}`);
    assert.equal(new Set(sessions.map((x) => x.sid)).size, 2, 'the other has a socket id of its own');
    owner.socket.close();
  });

  it('a session whose window passed is not recovered', async () => {
    const short = await startGateway({ env: { ...base, REDIS_URL: redis.url, CONNECTION_RECOVERY_SECONDS: '1' } });
    try {
      const c = await client(short.url);
      assert.equal((await subscribe(c.socket, 'h:3')).ok, true);
      await drop(c.socket);
      const pid = (c.socket as unknown as { _pid: string })._pid;
      await waitFor('the saved session to be written', async () => (await sessionKeys(redis, pid)) === 1, 5000);
      await waitFor('the saved session to expire in Redis', async () => (await sessionKeys(redis, pid)) === 0, 5000);
      assert.deepEqual(await reconnect(c.socket), { recovered: false });
      c.socket.close();
    } finally {
      await short.stop();
    }
  });

  it('a replica killed with its connections saves nothing: its clients start afresh elsewhere', async () => {
    const doomed = await startGateway({ env: { ...base, REDIS_URL: redis.url } });
    relay.retarget(doomed.port);
    const c = connect(relay.url, { transports: ['websocket'], forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
    await onceWithin(c, 'connect', 'connect');
    assert.equal((await subscribe(c, 'h:4')).ok, true);
    relay.retarget(gateways[1]!.port);
    const back = onceWithin(c, 'connect', 'reconnect elsewhere', 15_000);
    doomed.process.kill('SIGKILL');
    await back;
    assert.equal(c.recovered, false);
    c.close();
  });

  it("a restore looks for the session again 350 ms on only while the replica that holds it lives: once for a killed replica's client, twice for a living one's", async () => {
    const doomed = await startGateway({ env: { ...base, REDIS_URL: redis.url } });
    const orphan = await client(doomed.url);
    assert.equal((await subscribe(orphan.socket, 'h:6')).ok, true);
    const living = await client(gateways[1]!.url);
    // Its ack comes after the hello that carries its first offset.
    assert.equal((await subscribe(living.socket, 'h:7')).ok, true);
    const state = (c: { socket: Socket }) => c.socket as unknown as { _pid: string; _lastOffset: string };
    const [orphanPid, orphanOffset] = [state(orphan)._pid, state(orphan)._lastOffset];
    // A session never saved, held by a replica that lives: a pid of no session, with that replica's offset.
    const [unsavedPid, livingOffset] = [randomBytes(15).toString('base64url'), state(living)._lastOffset];
    assert.notEqual(orphanOffset.split('.')[0], livingOffset.split('.')[0], 'the two replicas append offsets of their own');
    const exited = doomed.exited();
    doomed.signal('SIGKILL');
    await exited;
    const reads = await watchSessionReads(redis);
    try {
      for (const [pid, offset] of [[orphanPid, orphanOffset], [unsavedPid, livingOffset]] as const) {
        const raw = await rawSocket(gateways[0]!.url);
        raw.send(`40${JSON.stringify({ pid, offset })}`);
        const answer = await raw.next((f) => f.startsWith('40') || f.startsWith('44'));
        raw.close();
        assert.ok(answer?.startsWith('40') && (JSON.parse(answer.slice(2)) as { pid?: string }).pid !== pid, `a fresh session: ${answer}`);
      }
      const counted = await reads.settled();
      assert.equal(counted.get(sessionKey(orphanPid)) ?? 0, 1, "the killed replica's client: one look");
      assert.equal(counted.get(sessionKey(unsavedPid)) ?? 0, 2, "the living replica's client: a second look 350 ms on");
    } finally {
      await reads.stop();
      orphan.socket.close();
      living.socket.close();
    }
  });

  it('Redis down during the restore: a fresh session, and the replica stays up', async () => {
    const c = await client(gateways[0]!.url);
    assert.equal((await subscribe(c.socket, 'h:5')).ok, true);
    await drop(c.socket);
    await redis.kill();
    try {
      assert.deepEqual(await reconnect(c.socket), { recovered: false });
    } finally {
      await redis.restart();
    }
    const other = await client(gateways[0]!.url);
    assert.equal(other.socket.connected, true);
    c.socket.close();
    other.socket.close();
  });
});

/**
 * GETs of session keys Redis serves from now on (MONITOR), by session hash. `settled` resolves once
 * a marker read sent after every read so far has come through, so it counts all of them.
 */
async function watchSessionReads(redis: RedisProcess): Promise<{ settled(): Promise<Map<string, number>>; stop(): Promise<void> }> {
  const { Redis } = await import('ioredis');
  const counts = new Map<string, number>();
  const markers = new Set<string>();
  // The marker's client; `monitor()` opens a connection of its own beside it.
  const other = new Redis(redis.url);
  const monitor = await other.monitor();
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (args[0]?.toLowerCase() !== 'get') return;
    const m = /^socket\.io-session:\{(.+)\}$/.exec(args[1] ?? '');
    if (m) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
    else if (args[1]?.startsWith('test-marker:')) markers.add(args[1]);
  });
  return {
    async settled() {
      const marker = `test-marker:${randomBytes(6).toString('hex')}`;
      await other.get(marker);
      await waitFor('the marker read in MONITOR', () => markers.has(marker), 5000);
      return counts;
    },
    async stop() {
      monitor.disconnect();
      other.disconnect();
    },
  };
}

/** Whether the token a client connected with has expired (its `exp`, read from its auth). */
function expired(socket: Socket): boolean {
  const jwt = (socket as unknown as { auth: { token: string } }).auth.token;
  const { exp } = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { exp: number };
  return Date.now() >= exp * 1000;
}

/** Whether the session of `pid` is in Redis (1) or not (0). */
async function sessionKeys(redis: RedisProcess, pid: string): Promise<number> {
  const { Redis } = await import('ioredis');
  const r = new Redis(redis.url, { lazyConnect: true });
  try {
    await r.connect();
    return await r.exists(`socket.io-session:{${sessionKey(pid)}}`);
  } finally {
    r.disconnect();
  }
}

describe('connection recovery on a 3-master Redis Cluster, sharded pub/sub', () => {
  let cluster: RedisCluster;
  let gateways: Gateway[];
  let relay: Relay;

  before(async () => {
    cluster = await startRedisCluster(3, 0);
    const env = { PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'h:*', PUBLIC_ROOMS: 'h:*', REDIS_CLUSTER_NODES: cluster.urls.join(','), REDIS_MODE: 'sharded' };
    gateways = [await startGateway({ env }), await startGateway({ env })];
    relay = await startRelay(gateways[0]!.port);
  });
  after(async () => {
    await relay?.close();
    for (const g of gateways ?? []) await g.stop();
    await cluster?.stop();
  });

  it('a client that comes back through the other replica gets what it missed in rooms on different shards, once, in order', async () => {
    // One room per master (by its history stream's slot).
    const byMaster = new Map<number, string>();
    for (let i = 0; byMaster.size < 3 && i < 500; i++) {
      const master = await cluster.masterFor(`{h:c${i}}`);
      if (!byMaster.has(master)) byMaster.set(master, `h:c${i}`);
    }
    const rooms = [...byMaster.values()];
    assert.equal(rooms.length, 3);
    const c = await client(relay.url);
    for (const room of rooms) assert.equal((await subscribe(c.socket, room)).ok, true);
    const acked: Record<string, string[]> = Object.fromEntries(rooms.map((r) => [r, []]));
    const send = async (n: number) => {
      for (let i = 0; i < n; i++) {
        for (const room of rooms) {
          const r = await publish(gateways[1]!.url, { room, event: 'm', data: i }, KEY);
          acked[room]!.push((r.body as { ids: Record<string, string> }).ids[room]!);
        }
      }
    };
    await send(5);
    await waitFor('the first messages', () => c.got.length === 15);
    await drop(c.socket);
    await send(5);
    relay.retarget(gateways[1]!.port);
    assert.deepEqual(await reconnect(c.socket), { recovered: true });
    await send(2);
    await waitFor('every message', () => c.got.length >= 36);
    for (const room of rooms) assert.deepEqual(c.got.filter((g) => g.room === room).map((g) => g.id), acked[room], room);
    console.log(`# recovery on a Redis Cluster: rooms ${rooms.join(', ')}, one per master`);
    c.socket.close();
  });
});

describe('connection recovery: the bounds of a single node (memory store)', () => {
  let gw: Gateway;
  const env = {
    PUBLISH_KEYS: KEY,
    HISTORY_ROOMS: 'h:*',
    PUBLIC_ROOMS: 'h:*',
    JWT_SECRET: SECRET,
    ALLOW_ANONYMOUS: 'true',
    RECOVERY_JOURNAL_ROOM_ENTRIES: '10',
    RECOVERY_JOURNAL_ENTRIES: '100',
    RECOVERY_SESSIONS_PER_USER: '2',
    RECOVERY_SESSIONS_PER_ADDRESS: '2',
  };
  before(async () => {
    gw = await startGateway({ env });
  });
  after(async () => {
    await gw?.stop();
  });

  const send = async (room: string, data: string[]) => {
    for (const d of data) assert.equal((await publish(gw.url, { room, event: 'm', data: d }, KEY)).status, 200);
  };

  it('a client whose position the journal still holds gets what it missed; one whose position was dropped gets recovered: false and subscribes again', async () => {
    const watcher = await client(gw.url);
    assert.equal((await subscribe(watcher.socket, 'h:f')).ok, true);
    const near = await client(gw.url);
    const far = await client(gw.url);
    for (const c of [near, far]) assert.equal((await subscribe(c.socket, 'h:f')).ok, true);
    await send('h:f', ['a', 'b', 'c']);
    await waitFor('the first three', () => near.got.length === 3 && far.got.length === 3);
    await drop(far.socket);
    // Twelve live deliveries while far is away: its last one leaves the journal (10 per room).
    await send('h:f', Array.from({ length: 12 }, (_, i) => `x${i}`));
    await waitFor('the watcher has them', () => watcher.got.length === 15);
    await drop(near.socket);
    await send('h:f', ['y', 'z']);
    assert.deepEqual(await reconnect(near.socket), { recovered: true });
    await waitFor('near gets what it missed', () => near.got.length === 17);
    assert.deepEqual(near.got.slice(15).map((g) => g.data), ['y', 'z']);
    assert.deepEqual(await reconnect(far.socket), { recovered: false });
    // Not put back in a room at a position it cannot tell: it subscribes again, as the documented clients do.
    assert.equal((await subscribe(far.socket, 'h:f')).ok, true);
    await send('h:f', ['after']);
    await waitFor('far is back in the room', () => far.got.some((g) => g.data === 'after'));
    assert.deepEqual(far.got.map((g) => g.data), ['a', 'b', 'c', 'after'], 'nothing replayed from a position it cannot tell');
    for (const c of [watcher, near, far]) c.socket.close();
  });

  it("messages to rooms without members here are not journaled: they never push a waiting client's position out", async () => {
    const watcher = await client(gw.url);
    const away = await client(gw.url);
    for (const c of [watcher, away]) assert.equal((await subscribe(c.socket, 'h:kept')).ok, true);
    // k1 goes to each new member alone (the end of its catch-up); from k2 on, to the room.
    await send('h:kept', ['k1', 'k2']);
    await waitFor('k1 and k2', () => away.got.length === 2);
    await drop(away.socket);
    await send('h:kept', ['k3']);
    // 150 deliveries into 15 rooms nobody here is in: journaled (10 per room), they would push k2 and k3 out (100 per replica).
    await Promise.all(Array.from({ length: 15 }, (_, r) => send(`h:nobody-${r}`, Array.from({ length: 10 }, (_, i) => `n${i}`))));
    assert.deepEqual(await reconnect(away.socket), { recovered: true });
    await waitFor('k3, missed while away', () => away.got.some((g) => g.data === 'k3'));
    assert.deepEqual(away.got.map((g) => g.data), ['k1', 'k2', 'k3']);
    for (const c of [watcher, away]) c.socket.close();
  });

  it('keeps at most RECOVERY_SESSIONS_PER_USER sessions of one user: the oldest starts afresh', async () => {
    const three = [];
    for (let i = 0; i < 3; i++) {
      const c = await client(gw.url, { token: await token('ivy') });
      assert.equal((await subscribe(c.socket, 'h:ivy')).ok, true);
      three.push(c);
    }
    // One after another: "oldest" is the order the replica saved them in.
    for (const c of three) {
      const saved = outcome(await metricsText(gw), 'saved');
      await drop(c.socket);
      await waitFor('the session saved', async () => outcome(await metricsText(gw), 'saved') > saved);
    }
    assert.equal(outcome(await metricsText(gw), 'evicted'), 1, 'the oldest dropped');
    assert.deepEqual(await reconnect(three[0]!.socket), { recovered: false });
    assert.deepEqual(await reconnect(three[1]!.socket), { recovered: true });
    assert.deepEqual(await reconnect(three[2]!.socket), { recovered: true });
    for (const c of three) c.socket.close();
  });

  it('keeps at most RECOVERY_SESSIONS_PER_ADDRESS sessions of anonymous connections from one client address: the oldest starts afresh', async () => {
    const evicted = outcome(await metricsText(gw), 'evicted');
    const three = [];
    for (let i = 0; i < 3; i++) {
      const c = await client(gw.url);
      assert.equal((await subscribe(c.socket, 'h:anonymous')).ok, true);
      three.push(c);
    }
    for (const c of three) {
      const saved = outcome(await metricsText(gw), 'saved');
      await drop(c.socket);
      await waitFor('the session saved', async () => outcome(await metricsText(gw), 'saved') > saved);
    }
    assert.equal(outcome(await metricsText(gw), 'evicted'), evicted + 1, 'the oldest dropped: one address holds no more than RECOVERY_SESSIONS_PER_ADDRESS');
    assert.deepEqual(await reconnect(three[0]!.socket), { recovered: false });
    assert.deepEqual(await reconnect(three[1]!.socket), { recovered: true });
    assert.deepEqual(await reconnect(three[2]!.socket), { recovered: true });
    for (const c of three) c.socket.close();
  });
});

function outcome(metrics: string, name: string): number {
  return Number(new RegExp(`^herald_session_recovery_total\\{outcome="${name}"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
}

async function metricsText(gw: Gateway): Promise<string> {
  return (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
}
