import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';
import { toolPath } from './tools.js';
import { waitFor } from './wait.js';
import { killNow, owned } from './children.js';

const run = promisify(execFile);

export interface ClusterNode {
  port: number;
  process: ChildProcess | undefined;
}

/** A Redis Cluster of redis-server processes on free loopback ports, for tests. */
export interface RedisCluster {
  readonly nodes: ClusterNode[];
  /** Seed URLs for REDIS_CLUSTER_NODES. */
  readonly urls: string[];
  /** Port of the master serving `key`'s slot. */
  masterFor(key: string): Promise<number>;
  /** SIGKILLs the node on `port` and waits until the cluster is whole again (a replica promoted). */
  killAndAwaitFailover(port: number): Promise<void>;
  stop(): Promise<void>;
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run(toolPath('redis-cli'), ['-p', String(port), ...args]);
  return stdout;
}

/**
 * `masters` masters, each with `replicasPerMaster` replicas; cluster-node-timeout is short so a
 * failover takes seconds. Each node gets its own data directory and an explicit bus port.
 */
export async function startRedisCluster(masters = 3, replicasPerMaster = 1, nodeTimeoutMs = 1500): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cluster-'));
  const nodes: ClusterNode[] = [];
  const stop = async () => {
    for (const n of nodes) {
      if (n.process) await killNow(n.process, `redis ${n.port}`);
      n.process = undefined;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const healthy = async (alive: ClusterNode[]) => {
    for (const n of alive) {
      const info = await cli(n.port, 'CLUSTER', 'INFO').catch(() => '');
      if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) return false;
    }
    return true;
  };
  try {
    await start();
  } catch (err) {
    await stop();
    throw err;
  }

  async function start(): Promise<void> {
    const count = masters * (1 + replicasPerMaster);
    for (let i = 0; i < count; i++) {
      const [port, bus] = [await freePort(), await freePort()];
      const nodeDir = join(dir, String(port));
      await run('mkdir', ['-p', nodeDir]);
      const child = owned(
        spawn(
          toolPath('redis-server'),
          [
            '--port', String(port), '--cluster-port', String(bus), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
            '--cluster-config-file', join(nodeDir, 'nodes.conf'), '--cluster-node-timeout', String(nodeTimeoutMs),
            '--cluster-replica-validity-factor', '0', '--save', '', '--appendonly', 'no', '--dir', nodeDir,
          ],
          { stdio: ['ignore', 'ignore', 'inherit'] },
        ),
      );
      nodes.push({ port, process: child });
    }
    for (const n of nodes) await waitFor(`redis ${n.port} up`, async () => (await cli(n.port, 'PING').catch(() => '')).trim() === 'PONG');
    await run(toolPath('redis-cli'), [
      '--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicasPerMaster), '--cluster-yes',
    ]);
    await waitFor('cluster state ok on every node', () => healthy(nodes), 30_000);
    // A replica that has not synced with its master cannot take over from it: wait for every link.
    await waitFor(
      'every replica replicating',
      async () => {
        let linked = 0;
        for (const n of nodes) {
          const info = await cli(n.port, 'INFO', 'replication').catch(() => '');
          if (/role:slave/.test(info) && /master_link_status:up/.test(info)) linked++;
        }
        return linked === masters * replicasPerMaster;
      },
      30_000,
    );
  }

  return {
    nodes,
    urls: nodes.slice(0, masters).map((n) => `redis://127.0.0.1:${n.port}`),
    async masterFor(key) {
      return masterOfSlot(nodes, Number((await cli(anyAlive(nodes).port, 'CLUSTER', 'KEYSLOT', key)).trim()));
    },
    async killAndAwaitFailover(port) {
      const node = nodes.find((n) => n.port === port)!;
      const someSlot = await ownedSlot(nodes, port);
      await killNow(node.process!, `redis ${port}`);
      node.process = undefined;
      // Done when the others flag it failed, a live master owns its slots, and the state is ok.
      await waitFor(
        `failover of ${port}`,
        async () => {
          const table = await cli(anyAlive(nodes).port, 'CLUSTER', 'NODES');
          const line = table.split('\n').find((l) => l.includes(`127.0.0.1:${port}@`));
          if (!line || !/\bfail\b/.test(line.split(' ')[2]!)) return false;
          if ((await masterOfSlot(nodes, someSlot).catch(() => port)) === port) return false;
          return healthy(nodes.filter((n) => n.process));
        },
        30_000,
      );
    },
    stop,
  };
}

function anyAlive(nodes: ClusterNode[]): ClusterNode {
  const n = nodes.find((x) => x.process);
  if (!n) throw new Error('no live node');
  return n;
}

/** CLUSTER NODES lines: `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges...>`. */
async function masterOfSlot(nodes: ClusterNode[], slot: number): Promise<number> {
  const table = await cli(anyAlive(nodes).port, 'CLUSTER', 'NODES');
  for (const line of table.trim().split('\n')) {
    const f = line.split(' ');
    if (!f[2]!.includes('master') || f[2]!.includes('fail')) continue;
    for (const range of f.slice(8)) {
      const [a, b] = range.split('-').map(Number);
      if (slot >= a! && slot <= (b ?? a)!) return Number(/:(\d+)@/.exec(f[1]!)![1]);
    }
  }
  throw new Error(`no live master serves slot ${slot}`);
}

async function ownedSlot(nodes: ClusterNode[], port: number): Promise<number> {
  const table = await cli(anyAlive(nodes).port, 'CLUSTER', 'NODES');
  const line = table.split('\n').find((l) => l.includes(`127.0.0.1:${port}@`));
  const range = line?.split(' ').slice(8)[0];
  if (!range) throw new Error(`${port} owns no slots`);
  return Number(range.split('-')[0]);
}
