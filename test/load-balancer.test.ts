import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { compareIds } from '../src/protocol/ids.js';
import { connectClient, connectRecovering, publish, type RecoveringClient, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startHaproxy, type Haproxy } from './helpers/haproxy.js';
import { freePort } from './helpers/ports.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { needs } from './helpers/tools.js';
import { onceWithin, waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
/** Documented in docs/guides/load-balancer.md: a client of a crashed replica is back through the balancer within this. */
const RECONNECT_BOUND_MS = 10_000;

/**
 * deploy/compose/haproxy.cfg (rendered with loopback ports) in front of three gateway processes and
 * a redis-server: what `docker compose up --scale gateway=3` runs, minus the containers.
 */
describe('behind HAProxy with the compose configuration', { skip: needs('haproxy') }, () => {
  let redis: RedisProcess;
  let lb: Haproxy;
  const names = ['gw1', 'gw2', 'gw3'] as const;
  type Name = (typeof names)[number];
  const ports = {} as Record<Name, number>;
  const gateways = {} as Record<Name, Gateway>;
  /** Every gateway process started, restarted ones included, for their logs in failure messages. */
  const started: Gateway[] = [];
  const clients: TestClient[] = [];

  const launch = async (name: Name) => {
    gateways[name] = await startGateway({
      // DRAIN_DELAY_SECONDS covering this HAProxy config's health check (compose.yaml sets 3: inter
      // 1 s × fall 2 + 1 s; test/deploy-files.test.ts checks that sum), here with 2 s more, so that
      // a busy test machine's late check cannot fail the test. The history holds all that the
      // rolling restart publishes (up to 3,000), so it can be compared.
      env: { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, PORT: String(ports[name]), DRAIN_SECONDS: '2', DRAIN_DELAY_SECONDS: '5', HISTORY_ROOMS: 'lb:history:* size=5000' },
    });
    started.push(gateways[name]);
  };
  /** Warnings and errors the gateways logged (pino levels 40 and up). */
  const warnings = () => JSON.stringify(started.flatMap((g) => g.logs.filter((l) => l.level >= 40).map((l) => ({ replica: g.replicaId, ...l }))));
  const nameOf = (replica: string) => names.find((n) => gateways[n].replicaId === replica);
  /** A client through the balancer that, like an app, re-subscribes whenever it (re)connects. */
  const lbClient = async (room: string, opts: { transport?: 'websocket' | 'polling'; cookies?: boolean } = {}) => {
    const c = await connectClient(lb.url, { reconnection: true, ...opts });
    clients.push(c);
    assert.deepEqual(await c.subscribe(room), { ok: true, room });
    c.socket.on('connect', () => void c.subscribe(room));
    return c;
  };
  /** Waits until every client is connected, has re-subscribed, and receives a fresh publish. */
  const allReceiveFresh = async (cs: TestClient[], room: string, tag: string) => {
    await waitFor(`${tag}: clients connected`, () => cs.every((c) => c.socket.connected));
    await waitFor(
      `${tag}: every client receives a fresh publish`,
      async () => {
        await publish(lb.url, { room, event: 'probe', data: tag }, KEY);
        return cs.every((c) => c.received.some((r) => r.event === 'probe' && r.data === tag));
      },
      RECONNECT_BOUND_MS,
    );
  };

  before(async () => {
    redis = await startRedis();
    for (const n of names) ports[n] = await freePort();
    await Promise.all(names.map(launch));
    lb = await startHaproxy(names.map((n) => ({ name: n, port: ports[n] })));
  });

  after(async () => {
    for (const c of clients) c.close();
    await lb?.stop();
    await Promise.all(names.map((n) => gateways[n]?.stop()));
    await redis?.stop();
  });

  it('spreads WebSocket clients over the replicas, and one publish reaches all of them once', async () => {
    const cs = [];
    for (let i = 0; i < 6; i++) cs.push(await lbClient('lb:fanout'));
    const landed = cs.map((c) => nameOf(c.replica));
    assert.deepEqual(new Set(landed), new Set(names), `clients landed on ${landed.join(', ')}`);

    const res = await publish(lb.url, { room: 'lb:fanout', event: 'score', data: 1 }, KEY);
    assert.equal(res.status, 200);
    await publish(lb.url, { room: 'lb:fanout', event: 'end', data: null }, KEY);
    await Promise.all(cs.map((c) => c.waitFor('end', (r) => r.event === 'end')));
    for (const c of cs) assert.deepEqual(c.received.filter((r) => r.event === 'score').map((r) => r.meta.id), [res.body.id]);
  });

  it('keeps a long-polling client on one replica with the balancer cookie', async () => {
    const c = await lbClient('lb:polling', { transport: 'polling', cookies: true });
    for (let i = 0; i < 5; i++) {
      await publish(lb.url, { room: 'lb:polling', event: 'tick', data: i }, KEY);
      await c.waitFor(`tick ${i}`, (r) => r.event === 'tick' && r.data === i);
    }
    assert.ok(c.socket.connected);
    assert.equal(c.socket.io.engine.transport.name, 'polling');
  });

  it('without the cookie, long-polling breaks across replicas (the stickiness is what makes it work)', async () => {
    // Control for the test above: the same exchange without a cookie jar. Every publish forces a
    // new poll request; spread by the balancer, they reach replicas that do not know the session.
    let outcome = 'completed';
    try {
      const c = await connectClient(lb.url, { transport: 'polling', cookies: false });
      clients.push(c);
      await c.subscribe('lb:nocookie');
      for (let i = 0; i < 5; i++) {
        await publish(lb.url, { room: 'lb:nocookie', event: 'tick', data: i }, KEY);
        await waitFor(`tick ${i} or a broken session`, () => {
          if (!c.socket.connected) throw new Error('session lost');
          return c.received.some((r) => r.data === i);
        }, 3000);
      }
    } catch (err) {
      outcome = (err as Error).message;
    }
    console.log(`# long-polling without the cookie: ${outcome}`);
    assert.notEqual(outcome, 'completed', 'a cookie-less long-polling client should not survive a multi-replica backend');
  });

  it('SIGTERM: the balancer stops sending new clients to the draining replica; its clients reconnect to the others, none refused', async () => {
    const cs = [];
    for (let i = 0; i < 60; i++) cs.push(await lbClient('lb:drain'));
    const victim: Name = nameOf(cs[0]!.replica)!;
    const moved = cs.filter((c) => nameOf(c.replica) === victim);
    const replicasBefore = new Map(cs.map((c) => [c, c.replica]));
    // A reconnect the balancer sends back to the draining replica before its health check has
    // seen /readyz turn 503 (leastconn prefers the emptying replica) would be refused there.
    const refused: string[] = [];
    for (const c of moved) c.socket.io.on('reconnect_error', (err) => refused.push(String(err)));

    gateways[victim].signal('SIGTERM');
    await lb.waitForStatus(victim, 'DOWN');
    const fresh = [];
    for (let i = 0; i < 6; i++) fresh.push(await lbClient('lb:drain'));
    assert.ok(
      fresh.every((c) => nameOf(c.replica) !== victim),
      `new clients avoid ${victim}: ${fresh.map((c) => nameOf(c.replica)).join(', ')}`,
    );
    assert.equal(await gateways[victim].exited(), 0);

    await allReceiveFresh([...cs, ...fresh], 'lb:drain', 'after drain');
    for (const c of moved) {
      assert.notEqual(c.replica, replicasBefore.get(c), 'a drained client now sits on another replica');
      assert.notEqual(nameOf(c.replica), victim);
    }
    assert.deepEqual(refused, [], `no reconnect of the ${moved.length} drained clients is refused`);
    console.log(`# drain: ${moved.length} clients moved off ${victim}; 6 new clients avoided it`);
    await launch(victim);
    await lb.waitForStatus(victim, 'UP');
  });

  it(`SIGKILL: the dead replica's clients are back through the balancer within ${RECONNECT_BOUND_MS / 1000} s`, async () => {
    const cs = [];
    for (let i = 0; i < 9; i++) cs.push(await lbClient('lb:kill'));
    const victim: Name = nameOf(cs[0]!.replica)!;
    const orphaned = cs.filter((c) => nameOf(c.replica) === victim);
    const killedAt = Date.now();
    gateways[victim].signal('SIGKILL');
    await allReceiveFresh(cs, 'lb:kill', 'after kill');
    console.log(`# kill: ${orphaned.length} clients of ${victim} back in ${Date.now() - killedAt} ms`);
    for (const c of orphaned) assert.notEqual(nameOf(c.replica), victim);
    await launch(victim);
    await lb.waitForStatus(victim, 'UP');
  });

  it('rolling restart of every replica, one at a time: clients of a history room lose no message', async () => {
    const room = 'lb:history:rolling';
    const cs: RecoveringClient[] = [];
    for (let i = 0; i < 9; i++) {
      const c = await connectRecovering(lb.url, room);
      clients.push(c);
      cs.push(c);
    }
    let attempts = 0;
    let stop = false;
    // A steady publisher through the balancer for the whole restart, bounded in count.
    const publisher = (async () => {
      while (!stop && attempts < 3000) {
        await publish(lb.url, { room, event: 'seq', data: ++attempts }, KEY).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    for (const n of names) {
      gateways[n].signal('SIGTERM');
      assert.equal(await gateways[n].exited(), 0);
      await launch(n);
      await lb.waitForStatus(n, 'UP');
    }
    stop = true;
    await publisher;

    // What was published is what the history holds (a request that failed on the wire may still
    // have been appended; the history says).
    const published: string[] = [];
    for (let since = ''; ; ) {
      const page = (await getJson(`${lb.url}/v1/rooms/${room}/history?limit=1000${since ? `&since=${since}` : ''}`, KEY)) as any;
      published.push(...page.entries.map((e: { id: string }) => e.id));
      if (!page.next) break;
      since = page.next;
    }
    const last = published.at(-1)!;
    await waitFor('every client to have the last message', () => cs.every((c) => c.received.some((r) => r.meta?.id === last)), RECONNECT_BOUND_MS);
    const moves = cs.map((c) => c.acks.length - 1);
    console.log(`# rolling restart: ${published.length} published; ${cs.length} clients, ${moves.reduce((a, b) => a + b, 0)} resubscribes with since`);
    for (const c of cs) {
      const got = c.received.filter((r) => r.meta?.room === room).map((r) => r.meta.id);
      assert.deepEqual(got, published, `every message, in order, once: ${sequenceDiff(got, published)}; acks ${JSON.stringify(c.acks)}; gateway warnings ${warnings()}`);
      for (const ack of c.acks.slice(1)) assert.deepEqual({ ...(ack as object), offset: undefined }, { ok: true, room, recovered: true, offset: undefined });
    }
  });
});

/** What sets `got` apart from `want`, for the failure message: missing, repeated and out-of-order ids. */
function sequenceDiff(got: string[], want: string[]): string {
  const seen = new Set(got);
  const missing = want.filter((id) => !seen.has(id));
  const repeated = got.filter((id, i) => got.indexOf(id) !== i);
  const outOfOrder = got.filter((id, i) => i > 0 && compareIds(id, got[i - 1]!) < 0);
  return `${got.length} received of ${want.length}; missing ${JSON.stringify(missing)}; repeated ${JSON.stringify(repeated)}; out of order ${JSON.stringify(outOfOrder)}`;
}

async function getJson(url: string, key: string): Promise<unknown> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(res.status, 200);
  return res.json();
}
