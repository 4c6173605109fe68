import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../src/config/load.js';
import { SETTINGS } from '../src/config/schema.js';
import { HERALD_PREFIXES, unknownSettings } from '../src/config/unknown.js';
import { connectClient } from './helpers/clients.js';
import { CLI, claimsOf, herald, mint } from './helpers/cli.js';
import { startGateway, type LogLine } from './helpers/gateway.js';
import { owned } from './helpers/children.js';
import { onceWithin, waitFor } from './helpers/wait.js';

const ROOT = new URL('..', import.meta.url);
const SECRET = 'cli-test-jwt-secret-0123456789-abcdef';
const COMMANDS = ['start', 'check', 'token', 'keygen'];

/** What a replica of a real deployment has: every one of these passes `herald check` cleanly. */
const VALID = { PUBLISH_KEYS: 'cli-test-publish-key-0123', JWT_SECRET: SECRET, REDIS_URL: 'redis://127.0.0.1:6390' };

describe('herald: help, version and usage errors', () => {
  it('is package.json\'s "bin", a node script with a shebang', () => {
    const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as { bin: Record<string, string>; version: string };
    assert.equal(new URL(pkg.bin.herald!, ROOT).pathname, CLI);
    assert.match(readFileSync(CLI, 'utf8'), /^#!\/usr\/bin\/env node\n/);
  });

  it('prints help (exit 0), the version, and each command\'s help', async () => {
    const help = await herald(['--help']);
    assert.equal(help.code, 0);
    for (const c of COMMANDS) assert.match(help.stdout, new RegExp(`^  ${c} `, 'm'));
    assert.match(help.stdout, /Exit codes: 0 .*\n?.*1 failed.*\n?.*2 usage error/s);
    const pkg = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as { version: string };
    assert.deepEqual(await herald(['--version']), { code: 0, stdout: `${pkg.version}\n`, stderr: '' });
    for (const c of COMMANDS) {
      const run = await herald([c, '--help']);
      assert.equal(run.code, 0, c);
      assert.match(run.stdout, new RegExp(`^Usage: herald ${c}`), c);
    }
  });

  it('exits 2 with a clear message for no command, an unknown command, an unknown option or a bad value', async () => {
    const none = await herald([]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^Usage: herald <command>/);
    const typo = await herald(['strat']);
    assert.deepEqual([typo.code, typo.stdout], [2, '']);
    assert.match(typo.stderr, /unknown command "strat"; did you mean "start"\?/);
    const cases: [string[], RegExp][] = [
      [['token', '--sub', 'a', '--bogus'], /herald token: Unknown option '--bogus'/],
      [['start', '--port', '3000'], /herald start takes no options; settings are environment variables/],
      [['keygen', '--length', '8'], /--length must be a whole number from 16 to 512, got "8"/],
      [['keygen', '--count', '0'], /--count must be a whole number from 1 to 100/],
      [['check', 'extra'], /Unexpected argument 'extra'/],
      [['token', '--rooms', 'chat:*'], /--sub <user id> is required/],
      [['token', '--sub', 'a b'], /--sub "a b" must be usable in a room name/],
      [['token', '--sub', 'a', '--rooms', 'chat:*,bad room'], /--rooms has bad pattern\(s\) bad room/],
      [['token', '--sub', 'a', '--ttl', '2x'], /--ttl must be a lifetime from 1s to 366d/],
      [['token', '--sub', 'a', '--ttl', '367d'], /--ttl must be a lifetime/],
      [['token', '--sub', 'a', '--alg', 'RS256'], /--alg RS256 does not fit JWT_SECRET: use HS256, HS384, HS512/],
    ];
    for (const [args, message] of cases) {
      const run = await herald(args, { JWT_SECRET: SECRET });
      assert.equal(run.code, 2, args.join(' '));
      assert.equal(run.stdout, '', args.join(' '));
      assert.match(run.stderr, message, args.join(' '));
      assert.match(run.stderr, new RegExp(`Run herald ${args[0]} --help for its options`));
    }
  });
});

describe('herald keygen', () => {
  it('prints keys that every key setting accepts', async () => {
    const one = await herald(['keygen']);
    assert.equal(one.code, 0);
    const key = one.stdout.trim();
    assert.match(key, /^[A-Za-z0-9_-]{32}$/, 'default: 32 characters, enough for JWT_SECRET too');
    const many = await herald(['keygen', '--count', '6', '--length', '16']);
    const keys = many.stdout.trim().split('\n');
    assert.equal(keys.length, 6);
    assert.equal(new Set(keys).size, 6);
    for (const k of keys) assert.match(k, /^[A-Za-z0-9_-]{16}$/);
    const c = loadConfig({
      PUBLISH_KEYS: keys.slice(0, 3).join(','),
      CONTROL_KEYS: keys.slice(3).join(', '),
      JWT_SECRET: key,
      WEBHOOK_URL: 'https://backend.example.com/hooks',
      WEBHOOK_SECRET: keys[0]!,
    });
    assert.deepEqual(c.publishKeys.map((k) => k.key), keys.slice(0, 3));
    assert.deepEqual(c.controlKeys.map((k) => k.key), keys.slice(3));
    assert.equal((await herald(['keygen', '--length', '512'])).stdout.trim().length, 512);
  });
});

describe('herald check', () => {
  it('exits 0 on a valid configuration, and names every invalid setting with its code (exit 1)', async () => {
    assert.deepEqual(await herald(['check'], VALID), { code: 0, stdout: 'herald check: valid, 0 errors, 0 warnings\n', stderr: '' });
    const bad = await herald(['check'], { ...VALID, JWT_SECRET: 'short', PORT: 'abc', PUBLISH_KEY: 'x' });
    assert.equal(bad.code, 1);
    const lines = bad.stdout.trim().split('\n');
    assert.match(lines[0]!, /^error +config_invalid +PORT must be a whole number/);
    assert.match(lines[1]!, /^error +config_invalid +JWT_SECRET must be at least 32 characters long/);
    assert.match(lines[2]!, /^warning +unknown_setting +PUBLISH_KEY is not a herald setting and is ignored: did you mean PUBLISH_KEYS\?/);
    assert.equal(lines.at(-1), 'herald check: invalid, 2 errors, 1 warning');
  });

  it('flags misspelled settings with a did-you-mean, and exits 0 with warnings only (--json)', async () => {
    const typos = { PUBLISH_KEY: 'x', REDIS_URI: 'x', HISTORY_ROOM: 'x', redis_url: 'x', JWT_SECERT: 'x', PROT: 'x', REDIS_HOST: 'x' };
    const run = await herald(['check', '--json'], { ...VALID, ...typos });
    assert.equal(run.code, 0);
    const report = JSON.parse(run.stdout) as { valid: boolean; errors: unknown[]; warnings: { code: string; setting: string; didYouMean?: string; message: string }[] };
    assert.deepEqual([report.valid, report.errors], [true, []]);
    assert.deepEqual(
      report.warnings.map((w) => [w.code, w.setting, w.didYouMean]),
      [
        ['unknown_setting', 'HISTORY_ROOM', 'HISTORY_ROOMS'],
        ['unknown_setting', 'JWT_SECERT', 'JWT_SECRET'],
        ['unknown_setting', 'PROT', 'PORT'],
        ['unknown_setting', 'PUBLISH_KEY', 'PUBLISH_KEYS'],
        ['unknown_setting', 'REDIS_HOST', undefined],
        ['unknown_setting', 'REDIS_URI', 'REDIS_URL'],
        ['unknown_setting', 'redis_url', 'REDIS_URL'],
      ],
    );
    // Far from every setting, but with herald's prefix: the message lists that prefix's settings instead.
    assert.match(report.warnings[4]!.message, /herald's REDIS_ settings are REDIS_URL, REDIS_MODE, .*REDIS_KEY_PREFIX$/);
  });

  it('does not flag an ordinary environment: shells, Node, npm, proxies, Kubernetes service links', () => {
    const ordinary = [
      'PATH', 'HOME', 'HOSTNAME', 'USER', 'LOGNAME', 'SHELL', 'TERM', 'LANG', 'LC_ALL', 'TZ', 'PWD', 'OLDPWD', 'SHLVL', '_',
      'TMPDIR', 'EDITOR', 'PAGER', 'DISPLAY', 'COLORTERM', 'SSH_CLIENT', 'SSH_AUTH_SOCK', 'HISTSIZE', 'HISTFILE',
      'NODE', 'NODE_OPTIONS', 'NODE_PATH', 'NODE_VERSION', 'NODE_EXTRA_CA_CERTS', 'YARN_VERSION', 'UV_THREADPOOL_SIZE',
      'INIT_CWD', 'COLOR', 'FORCE_COLOR', 'NO_COLOR', 'CI', 'DEBUG', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy',
      'npm_config_cache', 'npm_package_name', 'npm_lifecycle_event', 'npm_execpath', 'TINI_SUBREAPER', 'UWS_USE_FALLBACK',
      'HERALD_PUBLISH_KEY', 'HERALD_JWT_SECRET', 'HERALD_TEST_AMQP_URL', 'POD_NAME', 'POD_IP', 'SERVER_PORT', 'APP_PORT',
      'KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT', 'KUBERNETES_SERVICE_PORT_HTTPS', 'KUBERNETES_PORT_443_TCP',
      'KUBERNETES_PORT_443_TCP_PROTO', 'KUBERNETES_PORT_443_TCP_ADDR', 'REDIS_SERVICE_HOST', 'REDIS_SERVICE_PORT',
      'REDIS_PORT_6379_TCP', 'REDIS_PORT_6379_TCP_ADDR', 'REDIS_PORT_6379_TCP_PORT', 'HERALD_PORT_3000_TCP_PROTO',
    ];
    const env: Record<string, string> = Object.fromEntries(ordinary.map((name) => [name, 'x']));
    // Service links: a Service named redis (deploy/k8s/overlays/try-it has one) gives pods REDIS_PORT=tcp://…
    Object.assign(env, { KUBERNETES_PORT: 'tcp://10.96.0.1:443', REDIS_PORT: 'tcp://10.96.0.7:6379', HERALD_PORT: 'tcp://10.96.0.9:3000' });
    assert.deepEqual(unknownSettings({ ...env, ...Object.fromEntries(SETTINGS.map((s) => [s.env, ''])) }), []);
    // The same name set by hand, not by a service link, is herald's and wrong.
    assert.deepEqual(unknownSettings({ REDIS_PORT: '6379' }).map((u) => u.name), ['REDIS_PORT']);
  });

  it('keeps its prefixes to words herald\'s settings start with', () => {
    for (const prefix of HERALD_PREFIXES) assert.ok(SETTINGS.some((s) => s.env.startsWith(prefix)), prefix);
  });
});

describe('herald token', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const refusal = async (url: string, token: string) => {
    const err = await connectClient(url, { auth: { token } }).then(
      (c) => (c.close(), undefined),
      (e: { data?: { code: string } }) => e,
    );
    return err?.data?.code ?? 'connected';
  };

  for (const transport of ['uws', 'node'] as const) {
    it(`signs with JWT_SECRET a token herald accepts, with its rooms, publish, ttl, jti, iss and aud (${transport})`, async () => {
      const env = { JWT_SECRET: SECRET, JWT_ISSUER: 'https://auth.example.com', JWT_AUDIENCE: 'herald' };
      const gw = await startGateway({ env: { ...env, TRANSPORT: transport } });
      try {
        const token = await mint(['--sub', 'alice', '--rooms', 'chat:*,news', '--rooms', 'orders:7', '--publish', 'chat:*', '--ttl', '10m', '--jti', 't-1'], env);
        const c = claimsOf(token);
        assert.deepEqual(
          [c.sub, c.rooms, c.publish, c.jti, c.iss, c.aud, (c.exp as number) - (c.iat as number)],
          ['alice', ['chat:*', 'news', 'orders:7'], ['chat:*'], 't-1', 'https://auth.example.com', 'herald', 600],
        );
        assert.ok(Math.abs((c.iat as number) - Date.now() / 1000) < 60, 'iat is now, in seconds');
        const client = await connectClient(gw.url, { auth: { token } });
        try {
          assert.deepEqual(await client.subscribe('chat:lobby'), { ok: true, room: 'chat:lobby' });
          assert.deepEqual(await client.subscribe('orders:7'), { ok: true, room: 'orders:7' });
          const refused = (await client.subscribe('orders:8')) as { ok: boolean; error: { code: string } };
          assert.deepEqual([refused.ok, refused.error.code], [false, 'forbidden']);
          const sent = (await client.socket.timeout(5000).emitWithAck('publish', { room: 'chat:lobby', event: 'hi', data: 1 })) as { ok: boolean };
          assert.equal(sent.ok, true);
          const denied = (await client.socket.timeout(5000).emitWithAck('publish', { room: 'news', event: 'hi', data: 1 })) as { error: { code: string } };
          assert.equal(denied.error.code, 'forbidden');
        } finally {
          client.close();
        }
        // iss and aud came from the environment: without them herald refuses the token.
        assert.equal(await refusal(gw.url, await mint(['--sub', 'alice'], { JWT_SECRET: SECRET })), 'unauthorized');
      } finally {
        await gw.stop();
      }
    });
  }

  it('signs with a private key (--key) for JWT_PUBLIC_KEY (RS256) and a file: JWKS (ES256, --kid)', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const file = (name: string, text: string) => (writeFileSync(join(dir, name), text), join(dir, name));
    const rsaKey = file('rsa.pem', rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    const rsaPub = file('rsa.pub', rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    const ecKey = file('ec.pem', ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    const otherKey = file('other.pem', other.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    const jwks = file('jwks.json', JSON.stringify({ keys: [{ ...ec.publicKey.export({ format: 'jwk' }), kid: 'k1', use: 'sig' }, { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'k2' }] }));

    const byKey = await startGateway({ env: { JWT_PUBLIC_KEY: rsaPub } });
    const byJwks = await startGateway({ env: { JWKS_URL: pathToFileURL(jwks).href } });
    try {
      const rs = await mint(['--sub', 'bob', '--rooms', 'chat:*', '--key', rsaKey], { JWT_PUBLIC_KEY: rsaPub });
      assert.equal(JSON.parse(Buffer.from(rs.split('.')[0]!, 'base64url').toString()).alg, 'RS256');
      assert.equal(await refusal(byKey.url, rs), 'connected');
      const es = await mint(['--sub', 'bob', '--key', ecKey, '--kid', 'k1'], { JWKS_URL: pathToFileURL(jwks).href });
      assert.deepEqual(JSON.parse(Buffer.from(es.split('.')[0]!, 'base64url').toString()), { alg: 'ES256', typ: 'JWT', kid: 'k1' });
      assert.equal(await refusal(byJwks.url, es), 'connected');
      const ps = await mint(['--sub', 'bob', '--key', rsaKey, '--alg', 'PS384'], { JWT_PUBLIC_KEY: rsaPub });
      assert.equal(await refusal(byKey.url, ps), 'connected');
    } finally {
      await byKey.stop();
      await byJwks.stop();
    }

    // What herald would refuse is refused here first (exit 1), with the reason.
    const fails: [string[], Record<string, string>, RegExp][] = [
      [['--sub', 'bob'], {}, /no signing key: set JWT_SECRET as herald has it, or pass --key/],
      [['--sub', 'bob', '--key', otherKey], { JWT_PUBLIC_KEY: rsaPub }, /is not the private key of JWT_PUBLIC_KEY: herald would refuse its tokens/],
      [['--sub', 'bob', '--key', rsaKey], { JWT_SECRET: SECRET }, /JWT_SECRET is set, so herald accepts only HS256\/HS384\/HS512 tokens signed with it: leave out --key/],
      [['--sub', 'bob', '--key', ecKey, '--kid', 'k2'], { JWKS_URL: pathToFileURL(jwks).href }, /herald with this environment would refuse the token/],
      [['--sub', 'bob', '--key', join(dir, 'missing.pem')], {}, /cannot read --key .*missing\.pem: ENOENT/],
      [['--sub', 'bob', '--key', rsaPub], {}, /is not a PEM private key/],
      [['--sub', 'bob'], { JWT_SECRET: 'too-short' }, /invalid configuration:\n {2}- JWT_SECRET must be at least 32 characters long/],
    ];
    for (const [args, env, message] of fails) {
      const run = await herald(['token', ...args], env);
      assert.deepEqual([run.code, run.stdout], [1, ''], args.join(' '));
      assert.match(run.stderr, message, args.join(' '));
    }
    const noCheck = await herald(['token', '--sub', 'bob', '--key', ecKey], {});
    assert.equal(noCheck.code, 0);
    assert.match(noCheck.stderr, /note: not checked: no JWT_PUBLIC_KEY or JWKS_URL is set here/);
  });

  it('warns when the lifetime outlasts REVOCATION_TTL_SECONDS (exit 0)', async () => {
    const run = await herald(['token', '--sub', 'a', '--ttl', '2d'], { JWT_SECRET: SECRET });
    assert.equal(run.code, 0);
    const lifetime = (jwt: string) => (claimsOf(jwt).exp as number) - (claimsOf(jwt).iat as number);
    assert.equal(lifetime(run.stdout.trim()), 2 * 86_400);
    assert.match(run.stderr, /warning: --ttl \(172800 s\) is longer than REVOCATION_TTL_SECONDS \(86400 s\)/);
    const quiet = await herald(['token', '--sub', 'a', '--ttl', '90'], { JWT_SECRET: SECRET });
    assert.deepEqual([quiet.code, lifetime(quiet.stdout.trim()), quiet.stderr], [0, 90, '']);
    assert.equal(lifetime(await mint(['--sub', 'a'], { JWT_SECRET: SECRET })), 3600, 'default 1h');
  });
});

describe('herald start', () => {
  /** `node dist/cli.js start` with `env`, its JSON log lines, until `listening` or its exit. */
  async function start(env: Record<string, string>) {
    const child = owned(spawn(process.execPath, [CLI, 'start'], { env: { PATH: process.env.PATH!, PORT: '0', HOST: '127.0.0.1', DRAIN_SECONDS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
    const logs: LogLine[] = [];
    const raw: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => (raw.push(line), logs.push(JSON.parse(line) as LogLine)));
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    return { child, logs, raw, stderr: () => stderr };
  }

  it('runs the gateway and warns through the JSON log about each misspelled setting, never its value', async () => {
    const secretish = 'value-that-must-not-be-logged-0123';
    const gw = await start({ PUBLISH_KEY: secretish, REDIS_URI: 'redis://10.0.0.1:6379', JWT_SECRET: SECRET });
    const listening = await waitFor('listening', () => gw.logs.find((l) => l.msg === 'listening'));
    const warnings = gw.logs.filter((l) => l.code === 'unknown_setting');
    assert.deepEqual(
      warnings.map((l) => [l.level, l.setting, l.didYouMean, l.msg]),
      [
        [40, 'PUBLISH_KEY', 'PUBLISH_KEYS', 'PUBLISH_KEY is not a herald setting and is ignored: did you mean PUBLISH_KEYS?'],
        [40, 'REDIS_URI', 'REDIS_URL', 'REDIS_URI is not a herald setting and is ignored: did you mean REDIS_URL?'],
      ],
    );
    assert.ok(!gw.raw.some((l) => l.includes(secretish) || l.includes('10.0.0.1')), 'no value in the log');
    assert.equal((await fetch(`http://127.0.0.1:${listening.port as number}/healthz`)).status, 200);
    const exit = onceWithin<[number | null]>(gw.child, 'exit', 'herald start to exit');
    gw.child.kill('SIGTERM');
    assert.deepEqual(await exit, [0, null], 'drains and exits 0 on SIGTERM, as npm start');
  });

  it('exits 1 listing every problem when the configuration is invalid, as npm start does', async () => {
    const gw = await start({ PORT: 'abc', JWT_SECRET: 'short' });
    const [code] = await onceWithin<[number | null]>(gw.child, 'close', 'herald start to exit');
    assert.equal(code, 1);
    assert.match(gw.stderr(), /herald: invalid configuration:\n {2}- PORT must be a whole number.*\n {2}- JWT_SECRET must be at least 32/);
  });

  it('npm start (dist/main.js) gives the same warning', async () => {
    const gw = await startGateway({ env: { HISTORY_ROOM: 'chat:*' } });
    try {
      const line = await gw.waitForLog('unknown setting', (l) => l.code === 'unknown_setting');
      assert.deepEqual([line.setting, line.didYouMean], ['HISTORY_ROOM', 'HISTORY_ROOMS']);
    } finally {
      await gw.stop();
    }
  });
});
