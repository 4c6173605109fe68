import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { onceWithin, waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
const SCOPED_KEY = 'scores-only-key-0123456789';
const SECRET = 'test-jwt-secret-0123456789-abcdefghij';
const ISSUER = 'https://auth.example.com';
const AUDIENCE = 'herald';

const now = () => Math.floor(Date.now() / 1000);
/** Short, so the expiry test waits seconds, not the default half minute. */
const SKEW = 3;

function hs256(claims: JWTPayload, opts: { secret?: string; exp?: number; iss?: string; aud?: string } = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(opts.iss ?? ISSUER)
    .setAudience(opts.aud ?? AUDIENCE)
    // An `exp` in the claims wins (setExpirationTime would overwrite it).
    .setExpirationTime(opts.exp ?? claims.exp ?? now() + 3600)
    .sign(new TextEncoder().encode(opts.secret ?? SECRET));
}

/** `header.payload.` with `alg: none`: what an attacker sends hoping the signature is not checked. */
function unsigned(claims: JWTPayload): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: ISSUER, aud: AUDIENCE, exp: now() + 3600, ...claims })}.`;
}

async function refusal(url: string, auth: Record<string, unknown> | undefined, extra: object = {}): Promise<string> {
  try {
    const c = await connectClient(url, { auth, ...extra });
    c.close();
    return 'connected';
  } catch (err) {
    return ((err as { data?: { code?: string } }).data?.code ?? (err as Error).message) as string;
  }
}

describe('connection auth and per-room authorization (HS256, two replicas)', () => {
  let redis: RedisProcess;
  let a: Gateway;
  let b: Gateway;
  const clients: TestClient[] = [];
  const as = async (gw: Gateway, claims: JWTPayload | undefined) => {
    const c = await connectClient(gw.url, { auth: claims ? { token: await hs256(claims) } : undefined });
    clients.push(c);
    return c;
  };

  before(async () => {
    redis = await startRedis();
    const env = {
      REDIS_URL: redis.url,
      PUBLISH_KEYS: `${KEY}, ${SCOPED_KEY} rooms=scores:*`,
      JWT_SECRET: SECRET,
      JWT_ISSUER: ISSUER,
      JWT_AUDIENCE: AUDIENCE,
      PUBLIC_ROOMS: 'scores:*',
      ALLOW_ANONYMOUS: 'true',
      JWT_CLOCK_SKEW_SECONDS: String(SKEW),
      // A history room among those a refresh takes away: its catch-up state must go with it.
      HISTORY_ROOMS: 'orders:*',
    };
    [a, b] = (await Promise.all([startGateway({ env }), startGateway({ env })])) as [Gateway, Gateway];
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
  });

  it('refuses forged, expired and mis-addressed tokens with stable codes', async () => {
    const cases: [string, Promise<string> | string, string][] = [
      ['wrong key', hs256({ sub: 'mallory' }, { secret: 'another-secret-0123456789-abcdefghijkl' }), 'unauthorized'],
      ['alg none', unsigned({ sub: 'mallory' }), 'unauthorized'],
      ['expired', hs256({ sub: 'alice' }, { exp: now() - 120 }), 'token_expired'],
      ['wrong audience', hs256({ sub: 'alice' }, { aud: 'someone-else' }), 'unauthorized'],
      ['wrong issuer', hs256({ sub: 'alice' }, { iss: 'https://evil.example.com' }), 'unauthorized'],
      ['no sub', hs256({}), 'unauthorized'],
      ['not yet valid (nbf beyond the skew)', hs256({ sub: 'alice', nbf: now() + 600 }), 'unauthorized'],
      ['sub unusable in a room name', hs256({ sub: 'a b' }), 'unauthorized'],
      ['garbage', 'not.a.jwt', 'unauthorized'],
      ['oversized', 'x'.repeat(20_000), 'unauthorized'],
    ];
    for (const [name, token, code] of cases) {
      assert.equal(await refusal(a.url, { token: await token }), code, name);
    }
    assert.equal(await refusal(a.url, { token: 42 }), 'unauthorized', 'non-string token');
    const stats = (await getJson(`${a.url}/readyz`)).body;
    assert.equal(stats.authFailures.unauthorized, 10);
    assert.equal(stats.authFailures.token_expired, 1);
    // Expired by less than the clock-skew allowance: accepted.
    assert.equal(await refusal(a.url, { token: await hs256({ sub: 'alice' }, { exp: now() - 1 }) }), 'connected');
  });

  it("delivers a user's messages to all of that user's connections on every replica, and nobody else", async () => {
    const alice1 = await as(a, { sub: 'alice' });
    const alice2 = await as(b, { sub: 'alice' });
    const bob = await as(a, { sub: 'bob', rooms: ['user:*', '*'] });
    const anon = await as(b, undefined);
    for (const c of [bob, anon]) {
      const ack = (await c.subscribe('user:alice')) as any;
      assert.deepEqual([ack.ok, ack.error?.code], [false, 'forbidden'], 'no one joins another user\'s room, whatever the claims');
    }
    await publish(a.url, { room: 'user:alice', event: 'dm', data: 'for alice' }, KEY);
    await publish(a.url, { room: 'scores:1', event: 'end', data: null }, KEY);
    await alice1.waitFor('dm on replica A', (r) => r.data === 'for alice');
    await alice2.waitFor('dm on replica B', (r) => r.data === 'for alice');
    await bob.subscribe('scores:1');
    await anon.subscribe('scores:1');
    await publish(b.url, { room: 'scores:1', event: 'end', data: null }, KEY);
    await Promise.all([bob, anon].map((c) => c.waitFor('sentinel', (r) => r.event === 'end')));
    assert.ok(![bob, anon].some((c) => c.received.some((r) => r.data === 'for alice')));
  });

  it('lets only matching claims into private rooms; anonymous clients get public rooms only', async () => {
    const alice = await as(a, { sub: 'alice', rooms: ['chat:team-42', 'orders:*'] });
    const carol = await as(b, { sub: 'carol' });
    const anon = await as(b, undefined);
    const ok = async (c: TestClient, room: string) => ((await c.subscribe(room)) as { ok: boolean }).ok;
    assert.deepEqual(
      [await ok(alice, 'chat:team-42'), await ok(alice, 'orders:9'), await ok(alice, 'chat:team-43'), await ok(alice, 'scores:1')],
      [true, true, false, true],
    );
    assert.deepEqual([await ok(carol, 'chat:team-42'), await ok(anon, 'chat:team-42'), await ok(anon, 'scores:2')], [false, false, true]);
    await publish(a.url, { room: 'chat:team-42', event: 'msg', data: 'secret' }, KEY);
    await publish(a.url, { room: 'scores:2', event: 'end', data: null }, KEY);
    await alice.waitFor('private message', (r) => r.data === 'secret');
    await anon.waitFor('sentinel', (r) => r.event === 'end');
    assert.ok(!carol.received.some((r) => r.data === 'secret') && !anon.received.some((r) => r.data === 'secret'));
  });

  it('lets clients publish only where their publish claim allows, through the same path as the API', async () => {
    const writer = await as(a, { sub: 'dave', rooms: ['chat:*'], publish: ['chat:team-7'] });
    const reader = await as(b, { sub: 'erin', rooms: ['chat:*'] });
    await reader.subscribe('chat:team-7');
    const sent = (await writer.socket.timeout(5000).emitWithAck('publish', { room: 'chat:team-7', event: 'msg', data: 'hi' })) as any;
    assert.equal(sent.ok, true);
    const got = await reader.waitFor('client publish', (r) => r.data === 'hi');
    assert.equal(got.meta.id, sent.ids['chat:team-7']);
    const refused = (await writer.socket.timeout(5000).emitWithAck('publish', { room: 'chat:team-8', event: 'msg', data: 'x' })) as any;
    assert.deepEqual([refused.ok, refused.error.code], [false, 'forbidden']);
    const bad = (await reader.socket.timeout(5000).emitWithAck('publish', { room: 'chat:team-7', event: 'msg', data: 'x' })) as any;
    assert.deepEqual([bad.ok, bad.error.code], [false, 'forbidden'], 'no publish claim, no publishing');
    const malformed = (await writer.socket.timeout(5000).emitWithAck('publish', { room: 'chat:team-7' })) as any;
    assert.deepEqual([malformed.ok, malformed.error.code], [false, 'bad_request']);
  });

  it('limits a scoped publish key to its rooms', async () => {
    assert.equal((await publish(a.url, { room: 'scores:3', event: 'e', data: 1 }, SCOPED_KEY)).status, 200);
    const refused = await publish(a.url, { rooms: ['scores:3', 'chat:team-42'], event: 'e', data: 1 }, SCOPED_KEY);
    assert.deepEqual([refused.status, refused.body.error.code], [403, 'forbidden']);
  });

  it('warns before expiry, disconnects at expiry, and a refresh narrows the rooms', async () => {
    // Expiring within the minute's notice: `herald:token_expiring` is sent at once (the client records it).
    const short = await as(a, { sub: 'frank', rooms: ['chat:*'], exp: now() + 1 });
    const told = onceWithin<[{ code: string }]>(short.socket, 'herald:disconnect', 'herald:disconnect');
    const gone = onceWithin<[string]>(short.socket, 'disconnect', 'disconnect at expiry');
    const notice = await short.waitFor('herald:token_expiring', (r) => r.event === 'herald:token_expiring');
    const expiresIn = (notice.data as { expiresIn: number }).expiresIn;
    assert.ok(expiresIn > 0 && expiresIn <= 1 + SKEW, `expiresIn ${expiresIn}`);
    assert.equal((await told)[0].code, 'token_expired');
    assert.equal((await gone)[0], 'io server disconnect');

    const exp = now() + 1;
    const renewed = await as(b, { sub: 'grace', rooms: ['chat:*', 'orders:*'], exp });
    await renewed.subscribe('chat:a');
    await renewed.subscribe('orders:1');
    await renewed.waitFor('herald:token_expiring', (r) => r.event === 'herald:token_expiring');
    const freshExp = now() + 3600;
    const ack = (await renewed.socket
      .timeout(5000)
      .emitWithAck('refresh', { token: await hs256({ sub: 'grace', rooms: ['chat:*'], exp: freshExp }) })) as any;
    assert.equal(ack.ok, true);
    assert.deepEqual(ack.removed, ['orders:1']);
    // Units: `exp` in seconds like the claim, `expiresAt` the same moment in milliseconds (docs/reference/security.md, Times and units).
    assert.deepEqual([ack.exp, ack.expiresAt], [freshExp, freshExp * 1000]);
    const other = (await renewed.socket.timeout(5000).emitWithAck('refresh', { token: await hs256({ sub: 'mallory' }) })) as any;
    assert.deepEqual([other.ok, other.error.code], [false, 'forbidden'], 'refresh cannot switch users');
    await waitFor('the first token to be past its expiry', () => Date.now() > (exp + SKEW) * 1000 + 500);
    await publish(a.url, { rooms: ['chat:a', 'orders:1'], event: 'after', data: 1 }, KEY);
    await renewed.waitFor('message after the old expiry', (r) => r.meta?.room === 'chat:a');
    assert.ok(renewed.socket.connected);
    await publish(a.url, { room: 'chat:a', event: 'end', data: null }, KEY);
    await renewed.waitFor('sentinel', (r) => r.event === 'end');
    assert.ok(!renewed.received.some((r) => r.meta?.room === 'orders:1'), 'left the history room the new token no longer allows');
  });
});

describe('public keys, JWKS, anonymous refusal and origins', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-auth-'));
  const gateways: Gateway[] = [];
  let rsa: { privateKey: CryptoKey; publicKey: CryptoKey };
  let ec: { privateKey: CryptoKey; publicKey: CryptoKey };
  let rsaGw: Gateway;
  let jwksGw: Gateway;
  let remoteJwksGw: Gateway;
  let strictGw: Gateway;
  let jwksServer: Server;
  const sign = (alg: string, key: CryptoKey | Uint8Array, claims: JWTPayload, kid?: string) =>
    new SignJWT(claims).setProtectedHeader({ alg, ...(kid ? { kid } : {}) }).setExpirationTime(now() + 600).sign(key);

  before(async () => {
    rsa = await generateKeyPair('RS256', { extractable: true });
    ec = await generateKeyPair('ES256', { extractable: true });
    const jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(ec.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
    const pem = await exportSPKI(rsa.publicKey);
    writeFileSync(join(dir, 'rsa.pem'), pem);
    // The issuer's JWKS endpoint, served on loopback.
    jwksServer = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(readFileSync(jwksFile));
    });
    await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
    const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
    [rsaGw, jwksGw, remoteJwksGw, strictGw] = await Promise.all([
      startGateway({ env: { JWT_PUBLIC_KEY: join(dir, 'rsa.pem'), PUBLIC_ROOMS: '*' } }),
      startGateway({ env: { JWKS_URL: pathToFileURL(jwksFile).href, PUBLIC_ROOMS: '*' } }),
      startGateway({ env: { JWKS_URL: jwksUrl, PUBLIC_ROOMS: '*' } }),
      startGateway({ env: { TRANSPORT: 'node', JWT_SECRET: SECRET, CORS_ORIGINS: 'https://app.example.com' } }),
    ]);
    gateways.push(rsaGw, jwksGw, remoteJwksGw, strictGw);
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    jwksServer?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('verifies RS256 with a PEM key and refuses algorithm confusion (HS256 keyed with the public key)', async () => {
    assert.equal(await refusal(rsaGw.url, { token: await sign('RS256', rsa.privateKey, { sub: 'u1' }) }), 'connected');
    const pem = new TextEncoder().encode(await exportSPKI(rsa.publicKey));
    assert.equal(await refusal(rsaGw.url, { token: await sign('HS256', pem, { sub: 'u1' }) }), 'unauthorized');
    assert.equal(await refusal(rsaGw.url, { token: unsigned({ sub: 'u1' }) }), 'unauthorized');
  });

  it('verifies ES256 against a JWKS file and refuses a key it does not list', async () => {
    assert.equal(await refusal(jwksGw.url, { token: await sign('ES256', ec.privateKey, { sub: 'u2' }, 'k1') }), 'connected');
    const stranger = await generateKeyPair('ES256');
    assert.equal(await refusal(jwksGw.url, { token: await sign('ES256', stranger.privateKey, { sub: 'u2' }, 'k1') }), 'unauthorized');
  });

  it('fetches the JWKS from the issuer URL', async () => {
    assert.equal(await refusal(remoteJwksGw.url, { token: await sign('ES256', ec.privateKey, { sub: 'u3' }, 'k1') }), 'connected');
    const stranger = await generateKeyPair('ES256');
    assert.equal(await refusal(remoteJwksGw.url, { token: await sign('ES256', stranger.privateKey, { sub: 'u3' }, 'k1') }), 'unauthorized');
  });

  it('refuses clients without a token when anonymous access is off', async () => {
    assert.equal(await refusal(strictGw.url, undefined), 'unauthorized');
    const token = await new SignJWT({ sub: 'h' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(now() + 60).sign(new TextEncoder().encode(SECRET));
    assert.equal(await refusal(strictGw.url, { token }), 'connected');
  });

  it('verifies HS256, HS384 and HS512 with JWT_SECRET (a key imported per algorithm), and refuses each signed with another secret', async () => {
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const token = (secret: string) => new SignJWT({ sub: 'h' }).setProtectedHeader({ alg }).setExpirationTime(now() + 60).sign(new TextEncoder().encode(secret));
      assert.equal(await refusal(strictGw.url, { token: await token(SECRET) }), 'connected', alg);
      assert.equal(await refusal(strictGw.url, { token: await token(`${SECRET}-other`) }), 'unauthorized', `${alg} with another secret`);
    }
  });

  it('refuses browser origins outside CORS_ORIGINS on WebSocket and long-polling handshakes', async () => {
    const token = await new SignJWT({ sub: 'h' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(now() + 60).sign(new TextEncoder().encode(SECRET));
    for (const transport of ['websocket', 'polling'] as const) {
      const evil = await refusal(strictGw.url, { token }, { transport, extraHeaders: { origin: 'https://evil.example.com' } });
      assert.notEqual(evil, 'connected', `${transport} from a foreign origin`);
      const good = await refusal(strictGw.url, { token }, { transport, extraHeaders: { origin: 'https://app.example.com' } });
      assert.equal(good, 'connected', `${transport} from the allowed origin`);
    }
  });
});
