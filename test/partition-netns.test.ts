import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { killNow, owned } from './helpers/children.js';
import { follow, type Follower } from './helpers/followers.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { freePort } from './helpers/ports.js';
import { post, publishLoop } from './helpers/publisher.js';
import { toolPath } from './helpers/tools.js';
import { onceWithin, waitFor } from './helpers/wait.js';

const run = promisify(execFile);
const ENABLED = process.env.HERALD_NETNS_TEST === '1';
const INSIDE = process.env.HERALD_NETNS_INSIDE === '1';
const KEY = 'partition-netns-key-0123456789';
const H = 'feed:h';
const P = 'plain:p';
const TIMEOUT_S = 2;
const HANG_MS = TIMEOUT_S * 1000 + 3000;
const WAIT = 40_000;

/**
 * The main partition scenario over real TCP: B runs in its own network namespace, joined to the
 * test's by two veth pairs, one for Redis and one for clients. The partition is a qdisc that
 * drops every packet (`tc qdisc add dev X root pfifo limit 0`) on both ends of the Redis link: no
 * RST, no FIN, SYNs unanswered, nothing the kernel would notice for hours. Not in `npm test`
 * (it needs `unshare -rn`, `ip` and `tc`): HERALD_NETNS_TEST=1 runs it, and it runs itself again
 * inside `unshare -rn` (a user and network namespace of its own: nothing on the host changes).
 */
describe('a replica cut off from Redis, in network namespaces', { skip: !ENABLED && 'set HERALD_NETNS_TEST=1 to run it (needs unshare -rn, ip and tc)' }, () => {
  if (!INSIDE) {
    it('runs inside a network namespace of its own (unshare -rn)', async () => {
      const child = spawn('unshare', ['-rn', process.execPath, '--import', 'tsx', '--test', '--test-force-exit', fileURLToPath(import.meta.url)], {
        // A run of its own, not a child of this one's test runner (which NODE_TEST_CONTEXT would make it).
        env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')), HERALD_NETNS_INSIDE: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
      const [code] = await onceWithin<[number | null]>(child, 'exit', 'the run inside the namespace', 180_000);
      for (const line of out.split('\n')) if (line.startsWith('# ') || /^\s*(not )?ok /.test(line)) console.log(`inside: ${line.trim().replace(/^#\s*/, '')}`);
      assert.equal(code, 0, out);
    });
    return;
  }

  let redis: ChildProcess;
  let redisDir: string;
  let a: Gateway;
  let b: Gateway;
  const followers: Follower[] = [];
  const sh = (...args: string[]) => run(args[0]!, args.slice(1));
  const inB = (...args: string[]) => sh('nsenter', '-t', String(b.process.pid), '-n', ...args);

  before(async () => {
    await sh('ip', 'link', 'set', 'lo', 'up');
    const port = await freePort();
    redisDir = mkdtempSync(join(tmpdir(), 'herald-netns-'));
    redis = owned(spawn(toolPath('redis-server'), ['--bind', '0.0.0.0', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', redisDir, '--protected-mode', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] }));
    await new Promise<void>((resolve) => redis.stdout!.on('data', (c: Buffer) => c.toString().includes('Ready to accept') && resolve()));
    const env = { PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'feed:*', PRESENCE_ROOMS: 'feed:*', PRESENCE_TTL_SECONDS: '3', REDIS_TIMEOUT_SECONDS: String(TIMEOUT_S), REDIS_OUTAGE_CLOSE_SECONDS: '2' };
    a = await startGateway({ env: { ...env, REDIS_URL: `redis://127.0.0.1:${port}` } });
    b = await startGateway({
      env: { ...env, REDIS_URL: `redis://10.77.0.1:${port}`, HOST: '0.0.0.0' },
      launcher: ['unshare', '-n', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh'],
      reachAt: '10.77.1.2',
    });
    // Two links into B's namespace: `r` to Redis (the one that is cut), `c` for clients and the test.
    for (const [link, net] of [['r', '10.77.0'], ['c', '10.77.1']] as const) {
      await sh('ip', 'link', 'add', `${link}0`, 'type', 'veth', 'peer', 'name', `${link}1`);
      await sh('ip', 'link', 'set', `${link}1`, 'netns', String(b.process.pid));
      await sh('ip', 'addr', 'add', `${net}.1/24`, 'dev', `${link}0`);
      await sh('ip', 'link', 'set', `${link}0`, 'up');
      await inB('ip', 'addr', 'add', `${net}.2/24`, 'dev', `${link}1`);
      await inB('ip', 'link', 'set', `${link}1`, 'up');
    }
    for (const g of [a, b]) await waitFor(`${g.replicaId} ready`, async () => (await fetch(`${g.url}/readyz`)).status === 200, WAIT);
  });
  after(async () => {
    for (const f of followers) f.close();
    await Promise.all([a?.stop(), b?.stop()]);
    if (redis) await killNow(redis, 'redis-server');
    if (redisDir) rmSync(redisDir, { recursive: true, force: true });
  });

  const cut = async (on: boolean) => {
    const op = on ? 'add' : 'del';
    await sh('tc', 'qdisc', op, 'dev', 'r0', 'root', ...(on ? ['pfifo', 'limit', '0'] : []));
    await inB('tc', 'qdisc', op, 'dev', 'r1', 'root', ...(on ? ['pfifo', 'limit', '0'] : []));
  };

  it('B notices, its clients move to A with every history message, no publish hangs, presence is right after the heal', async () => {
    const onA = await follow(a.url, [H, P], 'since');
    const zero = await follow(b.url, [H], 'zero-code');
    const since = await follow(b.url, [H, P], 'since');
    followers.push(onA, zero, since);
    // What a load balancer does once B is not ready: the next attempt goes to A.
    for (const f of [zero, since]) f.socket.on('disconnect', () => ((f.socket.io as unknown as { uri: string }).uri = a.url));
    const pub = publishLoop({ A: a.url, B: b.url }, KEY, [H, P], HANG_MS);
    try {
      await waitFor('history flows', () => [onA, zero, since].every((f) => f.got[H]!.length >= 5), WAIT);
      await cut(true);
      const during = await post(b.url, KEY, { room: H, event: 'm', data: 'during' }, HANG_MS, 'netns-during');
      assert.equal(during.status, 503, 'answered within the bound (status 0: no answer)');
      await waitFor('B /readyz 503', async () => (await fetch(`${b.url}/readyz`)).status === 503, WAIT);
      const metrics = await (await fetch(`${b.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
      assert.match(metrics, /^herald_redis_up 0$/m);
      await waitFor('B closed its clients, which reconnected to A', () => [zero, since].every((f) => f.socket.connected && f.replicas.at(-1) === a.replicaId), WAIT);
      assert.equal(zero.recovered.at(-1), true, 'recovered on A from the offset B sent last');
      await cut(false);
      await waitFor('B ready again', async () => (await fetch(`${b.url}/readyz`)).status === 200, WAIT);
      await pub.pause();
      const retried = await post(a.url, KEY, { room: H, event: 'm', data: 'during' }, HANG_MS, 'netns-during');
      assert.equal(retried.status, 200);
      // Every acknowledged message once, in order; one whose answer was lost with the cut (a
      // publish_timeout whose write had reached Redis) was published too, and is delivered like any other.
      const entries = ((await (await fetch(`${a.url}/v1/rooms/${H}/history?limit=1000`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { entries: { id: string; data: string }[] }).entries;
      const expected = pub.expected(H, entries, ['during']);
      for (const id of [...pub.acked(H), retried.body.ids[H] as string]) assert.ok(expected.includes(id), `acknowledged ${id} is in the history`);
      await waitFor('every follower has every acknowledged history message', () => [onA, zero, since].every((f) => f.got[H]!.length >= expected.length), WAIT);
      for (const f of [onA, zero, since]) assert.deepEqual(f.got[H], expected, `${f.kind} on ${f.replicas.join(' → ')}: once, in order`);
      assert.deepEqual(pub.attempts.filter((x) => x.status === 0), [], 'no publish hung');
      for (const g of [a, b]) {
        await waitFor(`presence through ${g.replicaId}`, async () => {
          const res = await fetch(`${g.url}/v1/rooms/${H}/presence`, { headers: { authorization: `Bearer ${KEY}` } });
          return ((await res.json()) as { connections: number }).connections === 3;
        }, WAIT);
      }
      console.log(`# netns: ${expected.length} history messages, ${pub.attempts.filter((x) => x.status !== 200).length} publishes refused by B while cut off`);
    } finally {
      await pub.stop();
    }
  });
});
