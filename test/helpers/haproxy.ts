import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
import { toolPath } from './tools.js';
import { waitFor } from './wait.js';
import { killNow, owned } from './children.js';

export const COMPOSE_HAPROXY_CFG = fileURLToPath(new URL('../../deploy/compose/haproxy.cfg', import.meta.url));

export interface Backend {
  name: string;
  port: number;
}

/**
 * deploy/compose/haproxy.cfg with only its `render:` lines replaced: the two binds move to loopback
 * ports and the DNS server-template becomes one `server` line per local gateway. Every other line
 * (timeouts, balance, cookies, health check) is the file operators deploy.
 */
export function renderComposeConfig(lbPort: number, statsPort: number, backends: readonly Backend[]): string {
  const text = readFileSync(COMPOSE_HAPROXY_CFG, 'utf8');
  const marks = { 'render:bind-public': 0, 'render:bind-stats': 0, 'render:servers': 0 };
  const out = text.split('\n').map((line) => {
    const indent = /^\s*/.exec(line)![0];
    if (line.includes('# render:bind-public')) {
      marks['render:bind-public']++;
      return `${indent}bind 127.0.0.1:${lbPort}`;
    }
    if (line.includes('# render:bind-stats')) {
      marks['render:bind-stats']++;
      return `${indent}bind 127.0.0.1:${statsPort}`;
    }
    if (line.includes('# render:servers')) {
      marks['render:servers']++;
      return backends.map((b) => `${indent}server ${b.name} 127.0.0.1:${b.port} check`).join('\n');
    }
    return line;
  });
  for (const [mark, n] of Object.entries(marks)) {
    if (n !== 1) throw new Error(`${COMPOSE_HAPROXY_CFG} must have exactly one "# ${mark}" line, has ${n}`);
  }
  return out.join('\n');
}

export interface Haproxy {
  readonly url: string;
  /** Server name → HAProxy's status for it (`UP`, `DOWN`, `UP 1/2`, `MAINT`, ...). */
  serverStatus(): Promise<Record<string, string>>;
  waitForStatus(server: string, status: 'UP' | 'DOWN'): Promise<void>;
  stop(): Promise<void>;
}

export async function startHaproxy(backends: readonly Backend[]): Promise<Haproxy> {
  const [lbPort, statsPort] = [await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'herald-haproxy-'));
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, renderComposeConfig(lbPort, statsPort, backends));
  const child = owned(spawn(toolPath('haproxy'), ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  let exited = false;
  child.once('exit', () => (exited = true));

  const serverStatus = async (): Promise<Record<string, string>> => {
    if (exited) throw new Error(`haproxy exited: ${stderr}`);
    const csv = await (await fetch(`http://127.0.0.1:${statsPort}/;csv`)).text();
    const [header, ...rows] = csv.replace(/^# /, '').trim().split('\n');
    const cols = header!.split(',');
    const [px, sv, st] = ['pxname', 'svname', 'status'].map((c) => cols.indexOf(c));
    const result: Record<string, string> = {};
    for (const row of rows) {
      const f = row.split(',');
      if (f[px!] === 'gateways' && f[sv!] !== 'BACKEND') result[f[sv!]!] = f[st!]!;
    }
    return result;
  };
  const waitForStatus = async (server: string, status: 'UP' | 'DOWN') => {
    await waitFor(`haproxy to see ${server} ${status}`, async () => (await serverStatus())[server] === status, 20_000);
  };
  for (const b of backends) await waitForStatus(b.name, 'UP');
  return {
    url: `http://127.0.0.1:${lbPort}`,
    serverStatus,
    waitForStatus,
    async stop() {
      if (!exited) await killNow(child, 'haproxy');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
