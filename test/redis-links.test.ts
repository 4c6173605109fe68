import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { startGateway } from './helpers/gateway.js';
import { startRedis } from './helpers/redis.js';
import { startRedisCluster } from './helpers/redis-cluster.js';
import { startRedisSentinel } from './helpers/redis-sentinel.js';
import { toolPath } from './helpers/tools.js';
import { waitFor } from './helpers/wait.js';

const run = promisify(execFile);

/** One line of `CLIENT LIST`: its fields. */
type Client = Record<string, string>;

async function clients(port: number, password?: string): Promise<Client[]> {
  const { stdout } = await run(toolPath('redis-cli'), ['-p', String(port), ...(password ? ['-a', password, '--no-auth-warning'] : []), 'CLIENT', 'LIST']);
  return stdout
    .trim()
    .split('\n')
    .map((line) => Object.fromEntries(line.split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])));
}

/**
 * Every connection a replica holds to Redis (found by the name herald gives it, `herald:<replica>:<role>`;
 * ioredis prefixes a cluster's shard subscribers with `ioredis-cluster(ssubscriber):`) is checked
 * actively: with REDIS_TIMEOUT_SECONDS=1 each is sent a PING every 200 ms, so after the replica has
 * been idle for 3 s none has been idle in Redis for more than a second.
 */
async function assertPinged(replicaId: string, servers: { port: number; password?: string }[], roles: string[]): Promise<void> {
  await delay(3000);
  const found = new Map<string, Client[]>();
  for (const s of servers) {
    for (const c of await clients(s.port, s.password)) {
      const m = new RegExp(`herald:${replicaId}:([a-z-]+)$`).exec(c.name ?? '');
      if (m) found.set(m[1]!, [...(found.get(m[1]!) ?? []), c]);
    }
  }
  assert.deepEqual([...found.keys()].sort(), [...roles].sort(), 'every role has its connections');
  for (const [role, list] of found) {
    for (const c of list) assert.ok(Number(c.idle) <= 1, `${role} (${c.name}) on ${c.laddr}: idle ${c.idle} s, last command ${c.cmd}`);
  }
}

const ENV = { REDIS_TIMEOUT_SECONDS: '1', HISTORY_ROOMS: 'h:*' };

describe('every Redis connection is checked actively', () => {
  it('standalone: the publisher and the subscriber', async () => {
    const redis = await startRedis();
    const g = await startGateway({ env: { ...ENV, REDIS_URL: redis.url } });
    try {
      await waitFor('ready', async () => (await fetch(`${g.url}/readyz`)).status === 200);
      await assertPinged(g.replicaId, [{ port: redis.port }], ['pub', 'sub']);
    } finally {
      await g.stop();
      await redis.stop();
    }
  });

  it('Sentinel: the master connections and the watchers on every Sentinel', async () => {
    const set = await startRedisSentinel({ replicas: 0, sentinels: 2 });
    const g = await startGateway({ env: { ...ENV, ...set.env } });
    try {
      await waitFor('ready', async () => (await fetch(`${g.url}/readyz`)).status === 200, 20_000);
      await assertPinged(g.replicaId, [...set.servers, ...set.sentinels], ['pub', 'sub', 'sentinel-watch']);
      const watchers = (await Promise.all(set.sentinels.map((s) => clients(s.port)))).flat().filter((c) => c.name === `herald:${g.replicaId}:sentinel-watch`);
      assert.equal(watchers.length, set.sentinels.length, 'one watcher per Sentinel');
    } finally {
      await g.stop();
      await set.stop();
    }
  });

  it('Redis Cluster: the node connections and the shard subscribers', async () => {
    const cluster = await startRedisCluster(3, 0);
    const g = await startGateway({ env: { ...ENV, REDIS_CLUSTER_NODES: cluster.urls.join(','), REDIS_MODE: 'sharded' } });
    try {
      await waitFor('ready', async () => (await fetch(`${g.url}/readyz`)).status === 200, 20_000);
      await assertPinged(g.replicaId, cluster.nodes, ['pub', 'sub']);
      const shardSubscribers = (await Promise.all(cluster.nodes.map((n) => clients(n.port)))).flat().filter((c) => c.name?.startsWith('ioredis-cluster(ssubscriber)'));
      assert.ok(shardSubscribers.length > 0, 'shard subscribers found (and checked above)');
    } finally {
      await g.stop();
      await cluster.stop();
    }
  });
});
