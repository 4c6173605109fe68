import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { loadConfig } from '../src/config/load.js';
import { clientAddress } from '../src/limits/client-ip.js';
import { KeyedLimiter } from '../src/limits/token-bucket.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startHaproxy, type Haproxy } from './helpers/haproxy.js';
import { freePort } from './helpers/ports.js';
import { needs } from './helpers/tools.js';
import { waitFor } from './helpers/wait.js';

describe('clientAddress (TRUST_PROXY)', () => {
  const peer = '10.0.0.9';

  it('is the peer when no proxy is trusted, whatever X-Forwarded-For says', () => {
    assert.equal(clientAddress('203.0.113.7', peer, 0), peer);
    assert.equal(clientAddress(undefined, peer, 1), peer, 'no header: the peer');
    assert.equal(clientAddress('  ,  ', peer, 1), peer, 'an empty header: the peer');
    assert.equal(clientAddress(undefined, undefined, 0), 'unknown');
  });

  it('is the n-th entry from the right: the one the outermost trusted proxy wrote', () => {
    assert.equal(clientAddress('198.51.100.1, 203.0.113.7', peer, 1), '203.0.113.7', 'a made-up leftmost entry is ignored');
    assert.equal(clientAddress('198.51.100.1,203.0.113.7,10.0.0.2', peer, 2), '203.0.113.7');
    assert.equal(clientAddress(['198.51.100.1', '203.0.113.7'], peer, 1), '203.0.113.7', 'several header lines, in order');
  });

  it('is the leftmost entry when there are fewer than n', () => {
    assert.equal(clientAddress('203.0.113.7', peer, 2), '203.0.113.7');
  });

  it('is configured as a count, true being 1 and false 0', () => {
    assert.equal(loadConfig({}).trustProxy, 0);
    assert.equal(loadConfig({ TRUST_PROXY: 'false' }).trustProxy, 0);
    assert.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, 1);
    assert.equal(loadConfig({ TRUST_PROXY: '2' }).trustProxy, 2);
    assert.throws(() => loadConfig({ TRUST_PROXY: 'yes' }), /TRUST_PROXY must be the number of proxies in front of herald/);
    assert.throws(() => loadConfig({ TRUST_PROXY: '-1' }), /TRUST_PROXY/);
  });
});

/** One Engine.IO handshake (long-polling open) from `localAddress`: true if accepted, false if refused as rate_limited. */
function handshake(base: string, localAddress: string, forwardedFor?: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const headers = forwardedFor ? { 'x-forwarded-for': forwardedFor } : undefined;
    const req = request(`${base}/socket.io/?EIO=4&transport=polling`, { localAddress, agent: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        if (res.statusCode === 200 && body.startsWith('0{')) resolve(true);
        else if (res.statusCode === 403 && body.includes('rate_limited')) resolve(false);
        else reject(new Error(`unexpected handshake answer ${res.statusCode}: ${body}`));
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** `n` handshakes at once; how many were accepted. */
async function accepted(n: number, attempt: (i: number) => Promise<boolean>): Promise<number> {
  return (await Promise.all(Array.from({ length: n }, (_, i) => attempt(i)))).filter(Boolean).length;
}

/** A burst of 5 per address, refilled at 1 a second: a burst of 10 at once gets 5 (6 if a second passes). */
const LIMITS = { CONNECT_BURST_PER_IP: '5', CONNECT_RATE_PER_IP: '1' };

describe('KeyedLimiter (the per-address buckets)', () => {
  it('holds at most maxKeys addresses; past them new addresses share one overflow bucket', () => {
    const limiter = new KeyedLimiter(1, 2, 3);
    for (const a of ['a', 'b', 'c']) assert.equal(limiter.take(a), true);
    assert.equal(limiter.size, 3);
    assert.equal(limiter.take('d'), true, 'the overflow bucket has its burst');
    assert.equal(limiter.take('e'), true);
    assert.equal(limiter.take('f'), false, 'addresses past the bound share the overflow bucket, now empty');
    assert.equal(limiter.size, 3, 'the map did not grow past maxKeys');
    assert.equal(limiter.take('a'), true, 'a held address keeps its own bucket');
    assert.equal(limiter.take('a'), false);
  });

  it('forgets the addresses whose buckets are full again, without another take (after a connect storm)', async () => {
    // 1,000 tokens a second: a bucket that gave one is full again after 1 ms; the sweep runs after 1 s.
    const limiter = new KeyedLimiter(1000, 5);
    for (let i = 0; i < 100; i++) assert.equal(limiter.take(`10.0.0.${i}`), true);
    assert.equal(limiter.size, 100);
    await waitFor('the full buckets to be swept', () => limiter.size === 0);
  });
});

describe('per-IP handshake limit with TRUST_PROXY=1', () => {
  let gw: Gateway;
  before(async () => {
    gw = await startGateway({ env: { ...LIMITS, TRUST_PROXY: '1' } });
  });
  after(async () => {
    await gw?.stop();
  });

  it('counts the entry the proxy appended, so a made-up leftmost X-Forwarded-For does not buy a fresh budget', async () => {
    // As a proxy forwards them: whatever the client sent, then the address the proxy saw.
    const n = await accepted(10, (i) => handshake(gw.url, '127.0.0.1', `198.51.100.${i + 1}, 203.0.113.7`));
    assert.ok(n <= 6, `${n} of 10 handshakes from one client accepted with a different made-up first hop each`);
    assert.equal(await accepted(5, () => handshake(gw.url, '127.0.0.1', '198.51.100.1, 203.0.113.8')), 5, 'another client has its own budget');
  });
});

/**
 * deploy/compose/haproxy.cfg in front of a gateway configured with compose.yaml's TRUST_PROXY:
 * clients from two addresses (127.0.0.2 and 127.0.0.3 reach HAProxy on 127.0.0.1 over loopback)
 * must get two budgets, not share HAProxy's.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`per-IP handshake limit behind the shipped HAProxy (${transport})`, { skip: needs('haproxy') }, () => {
    const compose = parse(readFileSync(new URL('../deploy/compose/compose.yaml', import.meta.url), 'utf8')) as {
      services: { gateway: { environment: Record<string, string> } };
    };
    const trustProxy = compose.services.gateway.environment.TRUST_PROXY;
    let gw: Gateway;
    let lb: Haproxy;

    before(async () => {
      const port = await freePort();
      gw = await startGateway({ env: { ...LIMITS, TRANSPORT: transport, PORT: String(port), ...(trustProxy ? { TRUST_PROXY: trustProxy } : {}) } });
      lb = await startHaproxy([{ name: 'gw1', port }]);
    });

    after(async () => {
      await lb?.stop();
      await gw?.stop();
    });

    it('gives clients with different addresses separate budgets, and ignores the X-Forwarded-For they send', async () => {
      const first = await accepted(10, (i) => handshake(lb.url, '127.0.0.2', `198.51.100.${i + 1}`));
      assert.ok(first >= 5 && first <= 6, `${first} of 10 handshakes from 127.0.0.2 accepted: its own burst of 5, made-up X-Forwarded-For or not`);
      const second = await accepted(5, () => handshake(lb.url, '127.0.0.3'));
      assert.equal(second, 5, '127.0.0.3 has a budget of its own, not what 127.0.0.2 left of a shared one');
    });
  });
}
