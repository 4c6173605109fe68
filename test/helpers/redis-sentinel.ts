import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';
import { toolPath } from './tools.js';
import { waitFor } from './wait.js';
import { killNow, owned } from './children.js';

const run = promisify(execFile);

/** A redis-server or a Sentinel of the set, on its loopback port. */
export interface SentinelSetNode {
  readonly port: number;
  process: ChildProcess | undefined;
}

/** A master, its replicas and the Sentinels monitoring them, each its own process on a free port. */
export interface RedisSentinelSet {
  /** The master name the Sentinels monitor. */
  readonly name: string;
  /** The master and its replicas, the master first as started. */
  readonly servers: SentinelSetNode[];
  readonly sentinels: SentinelSetNode[];
  /** REDIS_SENTINELS, REDIS_SENTINEL_NAME and the passwords, for a gateway's environment. */
  readonly env: Record<string, string>;
  /** Port of the master every live Sentinel names now (throws while they disagree). */
  master(): Promise<number>;
  /** SIGKILLs the current master; resolves with its port once the process is gone. */
  killMaster(): Promise<number>;
  /**
   * Resolves with the new master's port once every live Sentinel names a server other than
   * `oldMaster` and that server answers as a master.
   */
  awaitFailover(oldMaster: number): Promise<number>;
  /** `SENTINEL FAILOVER`: a switchover with the master still up; resolves like `awaitFailover`. */
  switchover(): Promise<{ from: number; to: number }>;
  /** redis-cli against a data server (with its password). */
  cli(port: number, ...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export interface SentinelSetOptions {
  /** Replicas of the master. @default 1 */
  replicas?: number;
  /** @default 3 */
  sentinels?: number;
  /** `requirepass` (and `masterauth`) of the master and replicas. */
  password?: string;
  /** The Sentinels' own `requirepass`. */
  sentinelPassword?: string;
  /** Sentinel's `down-after-milliseconds`: how long a silent master takes to count as down. @default 1000 */
  downAfterMs?: number;
  /** Sentinel's `failover-timeout`. @default 3000 */
  failoverTimeoutMs?: number;
}

/**
 * Starts a master, `replicas` replicas and `sentinels` Sentinels (`redis-server --sentinel`, as
 * Debian's redis-server ships it) with short timeouts, and resolves once every Sentinel knows the
 * replicas and the other Sentinels, so the set can fail over at once.
 */
export async function startRedisSentinel(opts: SentinelSetOptions = {}): Promise<RedisSentinelSet> {
  const name = 'herald-test';
  const replicas = opts.replicas ?? 1;
  const quorum = Math.floor((opts.sentinels ?? 3) / 2) + 1;
  const dir = mkdtempSync(join(tmpdir(), 'herald-sentinel-'));
  const auth = opts.password ? ['--requirepass', opts.password, '--masterauth', opts.password] : [];
  const cli = async (port: number, password: string | undefined, ...args: string[]) => {
    const pass = password ? ['-a', password, '--no-auth-warning'] : [];
    const { stdout } = await run(toolPath('redis-cli'), ['-p', String(port), ...pass, ...args]);
    return stdout;
  };
  const data = (port: number, ...args: string[]) => cli(port, opts.password, ...args);
  const sentinel = (port: number, ...args: string[]) => cli(port, opts.sentinelPassword, ...args);
  const spawnServer = (args: string[]) => owned(spawn(toolPath('redis-server'), args, { stdio: ['ignore', 'ignore', 'inherit'] }));

  const servers: SentinelSetNode[] = [];
  const sentinels: SentinelSetNode[] = [];
  const stop = async () => {
    for (const n of [...sentinels, ...servers]) {
      if (n.process) await killNow(n.process, String(n.port));
      n.process = undefined;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await start();
  } catch (err) {
    await stop();
    throw err;
  }

  async function start(): Promise<void> {
    for (let i = 0; i <= replicas; i++) {
      const port = await freePort();
      const serverDir = join(dir, `redis-${port}`);
      mkdirSync(serverDir);
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', serverDir, ...auth];
      if (i > 0) args.push('--replicaof', '127.0.0.1', String(servers[0]!.port));
      servers.push({ port, process: spawnServer(args) });
    }
    for (const s of servers) await waitFor(`redis ${s.port} up`, async () => (await data(s.port, 'PING').catch(() => '')).trim() === 'PONG');
    await waitFor('every replica linked to the master', async () => {
      const info = await data(servers[0]!.port, 'INFO', 'replication');
      return (info.match(/^slave\d+:.*state=online/gm) ?? []).length === replicas;
    });

    for (let i = 0; i < (opts.sentinels ?? 3); i++) {
      const port = await freePort();
      const conf = join(dir, `sentinel-${port}.conf`);
      const lines = [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${name} 127.0.0.1 ${servers[0]!.port} ${quorum}`,
        `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 1000}`,
        `sentinel failover-timeout ${name} ${opts.failoverTimeoutMs ?? 3000}`,
        `sentinel parallel-syncs ${name} 1`,
      ];
      if (opts.password) lines.push(`sentinel auth-pass ${name} ${opts.password}`);
      // Sentinels with a password need it to talk to each other too.
      if (opts.sentinelPassword) lines.push(`requirepass ${opts.sentinelPassword}`, `sentinel sentinel-pass ${opts.sentinelPassword}`);
      // Sentinel rewrites its configuration file, so each has its own, writable.
      writeFileSync(conf, `${lines.join('\n')}\n`);
      sentinels.push({ port, process: spawnServer([conf, '--sentinel']) });
    }
    // Sentinels find the replicas through the master's INFO and each other through its hello channel.
    await waitFor(
      'every Sentinel to know the replicas and the other Sentinels',
      async () => {
        for (const s of sentinels) {
          const fields = (await sentinel(s.port, 'SENTINEL', 'MASTER', name).catch(() => '')).split('\n');
          const field = (key: string) => Number(fields[fields.indexOf(key) + 1]);
          if (field('num-slaves') !== replicas || field('num-other-sentinels') !== sentinels.length - 1) return false;
          if (!/^OK/.test(await sentinel(s.port, 'SENTINEL', 'CKQUORUM', name).catch(() => ''))) return false;
        }
        return true;
      },
      30_000,
    );
  }

  const live = () => sentinels.filter((s) => s.process);
  const master = async () => {
    const named = new Set<number>();
    for (const s of live()) named.add(Number((await sentinel(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)).trim().split('\n')[1]));
    if (named.size !== 1) throw new Error(`the Sentinels disagree on the master: ${[...named].join(', ')}`);
    return [...named][0]!;
  };
  const awaitFailover = async (oldMaster: number) => {
    let promoted = 0;
    await waitFor(
      `a Sentinel failover away from ${oldMaster}`,
      async () => {
        promoted = await master();
        return promoted !== oldMaster && /role:master/.test(await data(promoted, 'INFO', 'replication'));
      },
      30_000,
    );
    return promoted;
  };

  return {
    name,
    servers,
    sentinels,
    env: {
      REDIS_SENTINELS: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
      REDIS_SENTINEL_NAME: name,
      ...(opts.password ? { REDIS_PASSWORD: opts.password } : {}),
      ...(opts.sentinelPassword ? { REDIS_SENTINEL_PASSWORD: opts.sentinelPassword } : {}),
    },
    master,
    async killMaster() {
      const port = await master();
      const node = servers.find((s) => s.port === port)!;
      await killNow(node.process!, `redis ${port}`);
      node.process = undefined;
      return port;
    },
    awaitFailover,
    async switchover() {
      const from = await master();
      await sentinel(live()[0]!.port, 'SENTINEL', 'FAILOVER', name);
      return { from, to: await awaitFailover(from) };
    },
    cli: data,
    stop,
  };
}
