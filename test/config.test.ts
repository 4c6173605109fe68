import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
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
    assert.deepEqual(c.publishKeys, ['first-key-0123456789', 'second-key-0123456789']);
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

  it('refuses production without publish keys', () => {
    assert.throws(() => loadConfig({ NODE_ENV: 'production' }), /PUBLISH_KEYS must be set when NODE_ENV=production/);
    assert.equal(loadConfig({ NODE_ENV: 'production', PUBLISH_KEYS: 'k'.repeat(32) }).production, true);
  });

  it('makes the process exit non-zero with the problems on stderr', async () => {
    const bad = await runGatewayToExit({ TRANSPORT: 'nginx', PORT: '99999' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /TRANSPORT must be one of uws, node/);
    assert.match(bad.stderr, /PORT must be from 0 to 65535/);
    const prod = await runGatewayToExit({ NODE_ENV: 'production' });
    assert.equal(prod.code, 1);
    assert.match(prod.stderr, /PUBLISH_KEYS/);
  });

  it('is documented in README by the generated table', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    assert.ok(readme.includes(renderConfigTable()), 'README.md is out of date: run `npm run docs:config` and paste the table');
  });
});
