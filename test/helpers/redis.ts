import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { toolPath } from './tools.js';
import { killNow, owned } from './children.js';

/** A private redis-server on a free loopback port, which a test may kill and restart. */
export interface RedisProcess {
  readonly port: number;
  readonly url: string;
  /** With `tls`: the CA that signed the server certificate (give it to clients as NODE_EXTRA_CA_CERTS). */
  readonly caFile: string | undefined;
  /** SIGKILL, as an outage would; resolves when the process is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisOptions {
  /** Serve TLS only (`rediss://`), with a throw-away CA and a certificate for 127.0.0.1. */
  tls?: boolean;
  /** `requirepass`; the URL carries it as `:password@`. */
  password?: string;
  /** Keep the data across `kill` and `restart` (append-only file, fsync on every write). Default: lost. */
  persist?: boolean;
}

export async function startRedis(opts: RedisOptions = {}): Promise<RedisProcess> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'herald-redis-'));
  const args = ['--bind', '127.0.0.1', '--save', '', '--dir', dir];
  args.push(...(opts.persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']));
  if (opts.password) args.push('--requirepass', opts.password);
  let caFile: string | undefined;
  if (opts.tls) {
    caFile = join(dir, 'ca.pem');
    makeCertificates(dir);
    args.push('--port', '0', '--tls-port', String(port), '--tls-auth-clients', 'no');
    args.push('--tls-cert-file', join(dir, 'server.pem'), '--tls-key-file', join(dir, 'server.key'), '--tls-ca-cert-file', caFile);
  } else {
    args.push('--port', String(port));
  }
  let proc: ChildProcess | undefined;

  async function launch(): Promise<void> {
    const child = owned(spawn(toolPath('redis-server'), args, { stdio: ['ignore', 'pipe', 'inherit'] }));
    proc = child;
    let out = '';
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('Ready to accept connections')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}:\n${out}`)));
    });
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`redis-server on ${port} not ready:\n${out}`)), 10_000).unref(),
    );
    try {
      await Promise.race([ready, timeout]);
    } catch (err) {
      await kill();
      throw err;
    }
  }

  async function kill(): Promise<void> {
    const p = proc;
    proc = undefined;
    if (p) await killNow(p, 'redis-server');
  }

  await launch();
  const auth = opts.password ? `:${encodeURIComponent(opts.password)}@` : '';
  return {
    port,
    url: `${opts.tls ? 'rediss' : 'redis'}://${auth}127.0.0.1:${port}`,
    caFile,
    kill,
    restart: launch,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A CA and a server certificate for 127.0.0.1, made with the openssl command line. */
function makeCertificates(dir: string): void {
  const run = (...a: string[]) => execFileSync(toolPath('openssl'), a, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=herald-test-ca', '-keyout', 'ca.key', '-out', 'ca.pem');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'san.ext', '-out', 'server.pem');
}
