import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { describe, it } from 'node:test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { ConfigError, loadConfig, renderConfigTable } from '../src/config/load.js';
import { runGatewayToExit } from './helpers/gateway.js';

describe('configuration', () => {
  it('has working defaults for the embedded single node', () => {
    const c = loadConfig({});
    assert.equal(c.port, 3000);
    assert.equal(c.transport, 'uws');
    assert.equal(c.redisUrl, undefined);
    assert.deepEqual(c.publishKeys, []);
    assert.equal(c.publishMaxBytes, 65536);
    assert.equal(c.drainSeconds, 10);
    assert.equal(c.logLevel, 'info');
    assert.equal(c.replicaId, `${hostname()}-3000`, 'stable across restarts of the same host and port');
    assert.notEqual(loadConfig({ PORT: '0' }).replicaId, loadConfig({ PORT: '0' }).replicaId, 'PORT=0: unique');
    assert.ok(Object.isFrozen(c));
  });

  it('parses every variable', () => {
    const c = loadConfig({
      PORT: '8080',
      TRANSPORT: 'node',
      REDIS_URL: 'rediss://:secret@cache.example.net:6380',
      PUBLISH_KEYS: ' first-key-0123456789 , second-key-0123456789 ',
      DRAIN_SECONDS: '30',
      LOG_LEVEL: 'debug',
      REPLICA_ID: 'gw-1',
    });
    assert.equal(c.port, 8080);
    assert.equal(c.transport, 'node');
    assert.equal(c.redisUrl, 'rediss://:secret@cache.example.net:6380');
    assert.deepEqual(c.publishKeys, [
      { key: 'first-key-0123456789', rooms: undefined },
      { key: 'second-key-0123456789', rooms: undefined },
    ]);
    assert.equal(c.drainSeconds, 30);
    assert.equal(c.replicaId, 'gw-1');
  });

  it('reports every bad variable at once, naming it and what is allowed', () => {
    let err: unknown;
    try {
      loadConfig({
          PORT: 'abc',
          TRANSPORT: 'nginx',
          REDIS_URL: 'http://localhost:6379',
          DRAIN_SECONDS: '-1',
          LOG_LEVEL: 'loud',
          PUBLISH_KEYS: 'short',
          PUBLISH_MAX_BYTES: '0',
      });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError);
    const vars = err.problems.map((p) => p.split(' ')[0]);
    assert.deepEqual(vars, ['PORT', 'TRANSPORT', 'REDIS_URL', 'PUBLISH_KEYS', 'PUBLISH_MAX_BYTES', 'DRAIN_SECONDS', 'LOG_LEVEL']);
    assert.match(err.problems[1]!, /one of uws, node/);
    assert.equal(err.code, 'config_invalid');
  });

  it('reads CONFLATE_ROOMS as room patterns and refuses a bad one', () => {
    assert.deepEqual(loadConfig({}).conflateRooms, []);
    assert.deepEqual(loadConfig({ CONFLATE_ROOMS: 'score:*, prices:eur-*' }).conflateRooms, ['score:*', 'prices:eur-*']);
    assert.throws(() => loadConfig({ CONFLATE_ROOMS: 'score:* last=1' }), /CONFLATE_ROOMS has a bad pattern "score:\* last=1"/);
  });

  it('refuses production without publish keys or token verification', () => {
    assert.throws(() => loadConfig({ NODE_ENV: 'production' }), /PUBLISH_KEYS must be set when NODE_ENV=production[\s\S]*JWT_SECRET \(or JWT_PUBLIC_KEY, JWKS_URL or CONNECT_PROXY_URL\) must be set/);
    assert.throws(() => loadConfig({ NODE_ENV: 'production', PUBLISH_KEYS: 'k'.repeat(32) }), /JWT_SECRET/);
    const c = loadConfig({ NODE_ENV: 'production', PUBLISH_KEYS: 'k'.repeat(32), JWT_SECRET: 's'.repeat(32) });
    assert.equal(c.production, true);
    assert.deepEqual(c.corsOrigins, [], 'no browser origins by default in production');
    // Sessions checked by the backend are authentication too: no public rooms or anonymous clients by default.
    const cookies = loadConfig({ NODE_ENV: 'production', PUBLISH_KEYS: 'k'.repeat(32), CONNECT_PROXY_URL: 'http://backend.internal/herald/connect' });
    assert.deepEqual([cookies.allowAnonymous, cookies.publicRooms], [false, []]);
  });

  it('derives auth defaults from whether a token key is configured', () => {
    const open = loadConfig({});
    assert.deepEqual([open.allowAnonymous, open.publicRooms, open.corsOrigins], [true, ['*'], ['*']]);
    const closed = loadConfig({ JWT_SECRET: 's'.repeat(32) });
    assert.deepEqual([closed.allowAnonymous, closed.publicRooms], [false, []]);
    const mixed = loadConfig({ JWT_SECRET: 's'.repeat(32), ALLOW_ANONYMOUS: 'true', PUBLIC_ROOMS: 'scores:*, news' });
    assert.deepEqual([mixed.allowAnonymous, mixed.publicRooms], [true, ['scores:*', 'news']]);
  });

  it('checks auth settings: one key source, real keys, origins, scoped publish keys', () => {
    assert.match(problemsOf({ JWT_SECRET: 's'.repeat(32), JWKS_URL: 'https://idp.example.com/jwks' })[0]!, /JWT_SECRET conflicts with JWKS_URL/);
    assert.match(problemsOf({ JWT_SECRET: 'short' })[0]!, /at least 32/);
    assert.match(problemsOf({ JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\\nnope\\n-----END PUBLIC KEY-----' })[0]!, /not a PEM public key/);
    assert.match(problemsOf({ JWKS_URL: 'ftp://x' })[0]!, /http\(s\):\/\/ or file:/);
    assert.match(problemsOf({ CORS_ORIGINS: 'https://app.example.com/path' })[0]!, /not an origin/);
    assert.match(problemsOf({ ALLOW_ANONYMOUS: 'false' })[0]!, /cannot be false without/);
    assert.match(problemsOf({ PUBLISH_KEYS: 'k'.repeat(20) + ' rooms=bad room' })[0]!, /bad option/);
    const scoped = loadConfig({ PUBLISH_KEYS: `${'k'.repeat(20)} rooms=scores:*|news` });
    assert.deepEqual(scoped.publishKeys, [{ key: 'k'.repeat(20), rooms: ['scores:*', 'news'] }]);
  });

  it('reads the delta option of HISTORY_ROOMS beside the others', () => {
    const c = loadConfig({ HISTORY_ROOMS: 'scores:* last=1 delta, chat:* size=50' });
    assert.deepEqual(c.historyRooms, [
      { pattern: 'scores:*', size: undefined, ttlSeconds: undefined, last: 1, delta: true },
      { pattern: 'chat:*', size: 50, ttlSeconds: undefined, last: undefined },
    ]);
    assert.match(problemsOf({ HISTORY_ROOMS: 'scores:* delta=1' })[0]!, /bad option "delta=1".*or delta/);
  });

  it('makes the process exit non-zero with the problems on stderr', async () => {
    const bad = await runGatewayToExit({ TRANSPORT: 'nginx', PORT: '99999' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /TRANSPORT must be one of uws, node/);
    assert.match(bad.stderr, /PORT must be from 0 to 65535/);
    const prod = await runGatewayToExit({ NODE_ENV: 'production', JWT_SECRET: 's'.repeat(32) });
    assert.equal(prod.code, 1);
    assert.match(prod.stderr, /PUBLISH_KEYS/);
  });

  it('refuses a JWKS_URL over plain http, except for a loopback host outside production', () => {
    // Keys fetched in the clear can be replaced on the way: whoever does that signs any token.
    const [remote = '(accepted)'] = problemsOf({ JWKS_URL: 'http://idp.example.com/.well-known/jwks.json' });
    assert.match(remote, /^JWKS_URL must be an https:\/\/ or file: URL; http:\/\/ is accepted only for a loopback host .*"idp\.example\.com"/);
    for (const host of ['10.0.0.5', '[::ffff:7f00:1]', '127.0.0.1.nip.io', 'localhost.example.com']) {
      assert.equal(problemsOf({ JWKS_URL: `http://${host}/jwks.json` }).length, 1, host);
    }
    for (const url of ['http://127.0.0.1:8080/jwks.json', 'http://127.8.9.10/jwks.json', 'http://[::1]:8080/jwks.json', 'http://localhost/jwks.json']) {
      assert.equal(loadConfig({ JWKS_URL: url }).jwksUrl?.href, new URL(url).href, `${url} is a loopback host`);
    }
    const production = { NODE_ENV: 'production', PUBLISH_KEYS: 'k'.repeat(32) };
    assert.deepEqual(problemsOf({ ...production, JWKS_URL: 'http://127.0.0.1:8080/jwks.json' }), [
      'JWKS_URL must be an https:// or file: URL when NODE_ENV=production, got http://',
    ]);
    assert.equal(loadConfig({ ...production, JWKS_URL: 'https://idp.example.com/.well-known/jwks.json' }).jwksUrl?.protocol, 'https:');
    assert.equal(loadConfig({ ...production, JWKS_URL: pathToFileURL(jwksFile('{"keys": []}')).href }).jwksUrl?.protocol, 'file:');
  });

  it('reads a file: JWKS_URL at start-up and lists what is wrong with it among the other problems', () => {
    const missing = pathToFileURL(join(tmpdir(), `herald-no-such-jwks-${process.pid}.json`)).href;
    assert.match(problemsOf({ JWKS_URL: missing })[0]!, /^JWKS_URL names a file that cannot be read \(ENOENT\)/);
    assert.match(problemsOf({ JWKS_URL: pathToFileURL(jwksFile('{"keys": [')).href })[0]!, /^JWKS_URL names a file that is not JSON/);
    assert.match(problemsOf({ JWKS_URL: pathToFileURL(jwksFile('{"kty": "RSA"}')).href })[0]!, /^JWKS_URL names a file that is not a JWKS/);
    assert.equal(problemsOf({ JWKS_URL: pathToFileURL(jwksFile('{"keys": [')).href, PORT: 'x' }).length, 2, 'with the others, at once');
  });

  it('stops the process on a file: JWKS that is not JSON with the configuration error, not a stack', async () => {
    const bad = await runGatewayToExit({ JWKS_URL: pathToFileURL(jwksFile('not json')).href });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^herald: invalid configuration:\n  - JWKS_URL names a file that is not JSON/);
    assert.doesNotMatch(bad.stderr, /SyntaxError|at JSON\.parse/);
  });

  it('refuses to start with a JWKS_URL over plain http', async () => {
    const bad = await runGatewayToExit({ JWKS_URL: 'http://idp.example.com/.well-known/jwks.json' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /JWKS_URL must be an https:\/\/ or file: URL/);
  });

  it('is documented in docs/reference/configuration.md by the generated table', () => {
    const page = readFileSync(new URL('../docs/reference/configuration.md', import.meta.url), 'utf8');
    assert.ok(page.includes(renderConfigTable()), 'docs/reference/configuration.md is out of date: run `npm run -s docs:config` and paste the table');
  });
});

/** Every problem `loadConfig` reports for `env`; none when it loads. */
function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return [...err.problems];
  }
}

describe('configuration: Socket.IO path and pings', () => {
  it('SOCKETIO_PATH defaults to /socket.io and drops a trailing slash', () => {
    assert.equal(loadConfig({}).socketioPath, '/socket.io');
    assert.equal(loadConfig({ SOCKETIO_PATH: '/herald/socket.io/' }).socketioPath, '/herald/socket.io');
    assert.equal(loadConfig({ SOCKETIO_PATH: '/rt' }).socketioPath, '/rt');
    assert.equal(loadConfig({ SOCKETIO_PATH: '/a.b_c~d-e/v1' }).socketioPath, '/a.b_c~d-e/v1', 'only a first segment v1 is refused');
  });

  it('SOCKETIO_PATH refuses what would not serve or would take herald routes, saying why', () => {
    const cases: [string, RegExp][] = [
      ['socket.io', /^SOCKETIO_PATH must start with \/, got "socket\.io"/],
      ['/', /must not be \/ alone/],
      ['//', /segments of A-Z a-z 0-9 \. _ ~ - joined by single slashes/],
      ['/herald//socket.io', /single slashes, got "\/herald\/\/socket\.io"/],
      ['/herald/socket.io//', /single slashes/],
      ['/a b', /single slashes/],
      ['/x?y=1', /single slashes/],
      ['/%2e%2e', /single slashes/],
      ['/herald/../socket.io', /single slashes/],
      ['/v1', /must not be under \/v1, where herald's HTTP API lives/],
      ['/v1/socket.io', /must not be under \/v1/],
    ];
    for (const [value, message] of cases) {
      const problems = problemsOf({ SOCKETIO_PATH: value });
      assert.equal(problems.length, 1, `${value}: ${problems.join('; ')}`);
      assert.match(problems[0]!, message, value);
    }
  });

  it('PING_INTERVAL_MS and PING_TIMEOUT_MS default to Socket.IO\'s 25000 and 20000 and take whole milliseconds from 1000 to 60000', () => {
    const defaults = loadConfig({});
    assert.deepEqual([defaults.pingIntervalMs, defaults.pingTimeoutMs], [25_000, 20_000]);
    const short = loadConfig({ PING_INTERVAL_MS: '5000', PING_TIMEOUT_MS: '1000' });
    assert.deepEqual([short.pingIntervalMs, short.pingTimeoutMs], [5000, 1000]);
    for (const value of ['0', '999', '60001', '-1', '1.5', '25s', 'abc']) {
      const problems = problemsOf({ PING_INTERVAL_MS: value, PING_TIMEOUT_MS: value });
      assert.deepEqual(problems.map((p) => p.split(' ')[0]), ['PING_INTERVAL_MS', 'PING_TIMEOUT_MS'], value);
      assert.match(problems[0]!, /from 1000 to 60000/, value);
    }
  });

  it('a bad SOCKETIO_PATH stops the process with the reason', async () => {
    const bad = await runGatewayToExit({ SOCKETIO_PATH: 'socket.io', PING_TIMEOUT_MS: '100' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /SOCKETIO_PATH must start with \//);
    assert.match(bad.stderr, /PING_TIMEOUT_MS must be from 1000 to 60000, got 100/);
  });
});

describe('configuration: REDIS_CLUSTER_NODES', () => {
  const cluster = (nodes: string) => ({ REDIS_MODE: 'sharded', REDIS_CLUSTER_NODES: nodes });

  it('takes host:port as redis-cli and ioredis write it, beside redis:// and rediss:// URLs', () => {
    assert.deepEqual(loadConfig(cluster('127.0.0.1:7000, 127.0.0.1:7001')).redisClusterNodes, ['redis://127.0.0.1:7000', 'redis://127.0.0.1:7001']);
    assert.deepEqual(loadConfig(cluster('redis-0.redis.svc:6379,node_1:6379')).redisClusterNodes, ['redis://redis-0.redis.svc:6379', 'redis://node_1:6379']);
    assert.deepEqual(loadConfig(cluster('[::1]:7000')).redisClusterNodes, ['redis://[::1]:7000']);
    assert.deepEqual(loadConfig(cluster('redis://10.0.0.5:6379,redis://10.0.0.6:6379')).redisClusterNodes, ['redis://10.0.0.5:6379', 'redis://10.0.0.6:6379']);
    const azure = 'rediss://:key@herald.redis.cache.windows.net:6380';
    assert.deepEqual(loadConfig(cluster(`${azure},10.0.0.7:6380`)).redisClusterNodes, [azure, 'redis://10.0.0.7:6380'], 'bare nodes after the first take its TLS and password');
  });

  it('refuses anything else with what it accepts, never echoing a password', () => {
    for (const entry of ['127.0.0.1', '7000', 'localhost:', '::1:7000', '[::1', 'a b:7000', 'host:0', 'host:65536', 'host:70a', 'redis://10.0.0.5', 'http://10.0.0.5:6379', 'redis://10.0.0.5:6379/3', 'redis://host:port', 'redis://10.0.0.5:6379?db=1']) {
      const problems = problemsOf(cluster(`127.0.0.1:7000,${entry}`));
      assert.equal(problems.length, 1, `${entry}: ${problems.join('; ')}`);
      assert.match(problems[0]!, /^REDIS_CLUSTER_NODES has ".*": use host:port, redis:\/\/host:port or rediss:\/\/:password@host:port$/, entry);
    }
    const [leaked = ''] = problemsOf(cluster('rediss://:s3cret@10.0.0.5'));
    assert.match(leaked, /has "rediss:\/\/\*\*\*@10\.0\.0\.5"/);
    assert.doesNotMatch(leaked, /s3cret/);
  });

  it('refuses later nodes whose scheme or password differ from the first, which the client uses for all', () => {
    for (const second of ['rediss://10.0.0.6:6380', 'redis://:other@10.0.0.6:6379']) {
      const [problem = ''] = problemsOf(cluster(`redis://:pw@10.0.0.5:6379,${second}`));
      assert.match(problem, /another scheme or password than the first node/, second);
      assert.doesNotMatch(problem, /other@|:pw@/, 'passwords stay out of the message');
    }
    assert.equal(loadConfig(cluster('redis://:pw@10.0.0.5:6379,redis://:pw@10.0.0.6:6379')).redisClusterNodes.length, 2, 'the same on each is fine');
  });

  it('still needs sharded mode and no REDIS_URL', () => {
    assert.match(problemsOf({ REDIS_CLUSTER_NODES: '127.0.0.1:7000' })[0]!, /REDIS_MODE must be sharded with REDIS_CLUSTER_NODES/);
    assert.match(problemsOf({ ...cluster('127.0.0.1:7000'), REDIS_URL: 'redis://127.0.0.1:6379' })[0]!, /REDIS_CLUSTER_NODES and REDIS_URL are exclusive/);
  });
});

describe('configuration: Redis Sentinel', () => {
  const sentinels = { REDIS_SENTINELS: '10.0.0.5:26379, 10.0.0.6, [fd00::7]:26380', REDIS_SENTINEL_NAME: 'mymaster' };

  it('takes the Sentinels as host:port (26379 by default), the master name and the two passwords', () => {
    const c = loadConfig({ ...sentinels, REDIS_PASSWORD: 'data-secret', REDIS_SENTINEL_PASSWORD: 'sentinel-secret', REDIS_MODE: 'sharded' });
    assert.deepEqual(c.redisSentinels, [
      { host: '10.0.0.5', port: 26379 },
      { host: '10.0.0.6', port: 26379 },
      { host: 'fd00::7', port: 26380 },
    ]);
    assert.deepEqual([c.redisSentinelName, c.redisPassword, c.redisSentinelPassword, c.redisMode], ['mymaster', 'data-secret', 'sentinel-secret', 'sharded']);
    assert.deepEqual([c.redisUrl, c.redisClusterNodes], [undefined, []]);
    const none = loadConfig({});
    assert.deepEqual([none.redisSentinels, none.redisSentinelName, none.redisPassword, none.redisSentinelPassword], [[], undefined, undefined, undefined]);
  });

  it('is exclusive with REDIS_URL and REDIS_CLUSTER_NODES', () => {
    assert.deepEqual(problemsOf({ ...sentinels, REDIS_URL: 'redis://127.0.0.1:6379' }), [
      'REDIS_SENTINELS and REDIS_URL are exclusive: set one (the Sentinels tell herald where the master is)',
    ]);
    assert.deepEqual(problemsOf({ ...sentinels, REDIS_MODE: 'sharded', REDIS_CLUSTER_NODES: '127.0.0.1:7000' }), [
      'REDIS_SENTINELS and REDIS_CLUSTER_NODES are exclusive: a Redis Cluster fails over by itself, without Sentinel',
    ]);
  });

  it('needs the master name with the Sentinels, and refuses the other settings without them', () => {
    assert.match(problemsOf({ REDIS_SENTINELS: '10.0.0.5:26379' })[0]!, /^REDIS_SENTINEL_NAME must be set with REDIS_SENTINELS/);
    assert.match(problemsOf({ ...sentinels, REDIS_SENTINEL_NAME: 'my master' })[0]!, /^REDIS_SENTINEL_NAME must be 1-128 printable characters without spaces/);
    assert.deepEqual(problemsOf({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_SENTINEL_NAME: 'mymaster', REDIS_PASSWORD: 'x', REDIS_SENTINEL_PASSWORD: 'y' }), [
      'REDIS_SENTINEL_NAME is read only with REDIS_SENTINELS, which is not set',
      'REDIS_PASSWORD is read only with REDIS_SENTINELS: with REDIS_URL or REDIS_CLUSTER_NODES, put the password in the URL (redis://:password@host:port)',
      'REDIS_SENTINEL_PASSWORD is read only with REDIS_SENTINELS',
    ]);
  });

  it('refuses Sentinel addresses it cannot use, saying what it takes', () => {
    for (const entry of ['redis://10.0.0.5:26379', '10.0.0.5:0', '10.0.0.5:99999', 'a b', '::1', '10.0.0.5:port']) {
      const [problem = '(accepted)', ...more] = problemsOf({ REDIS_SENTINELS: `10.0.0.6:26379,${entry}`, REDIS_SENTINEL_NAME: 'mymaster' });
      assert.equal(more.length, 0, entry);
      assert.match(problem, /^REDIS_SENTINELS has ".*": use host:port of each Sentinel, e.g. 10\.0\.0\.5:26379/, entry);
    }
    assert.match(problemsOf({ REDIS_SENTINELS: 'redis://10.0.0.5:26379', REDIS_SENTINEL_NAME: 'm' })[0]!, /\(Sentinel addresses, not URLs\)/);
  });

  it('a bad Sentinel setting stops the process with the reason', async () => {
    const bad = await runGatewayToExit({ REDIS_SENTINELS: '10.0.0.5:26379', REDIS_URL: 'redis://127.0.0.1:6379' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /REDIS_SENTINELS and REDIS_URL are exclusive/);
    assert.match(bad.stderr, /REDIS_SENTINEL_NAME must be set with REDIS_SENTINELS/);
  });
});

/** A JWKS file with `text` in a fresh temporary folder. */
function jwksFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'herald-jwks-')), 'jwks.json');
  writeFileSync(file, text);
  return file;
}
