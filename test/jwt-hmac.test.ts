import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { errors, jwtVerify } from 'jose';
import { createTokenVerifier, HMAC_ALGS, type VerifierConfig } from '../src/auth/jwt.js';
import { HeraldError } from '../src/errors.js';

/**
 * HS* tokens are checked with node:crypto (src/auth/jwt.ts `hmacVerifier`), not jose. jose stays
 * the reference: every token below, well-formed or not, gets the same verdict from herald's
 * verifier as from jose's `jwtVerify` with the options herald used to give it (accepted with the
 * same claims, expired, or refused), with and without JWT_ISSUER / JWT_AUDIENCE / a clock skew.
 */
const SECRET = 'jwt-hmac-test-secret-0123456789abcdef';
const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** A compact JWS over `header` and `payload` (objects or raw strings), signed with `secret` under `hash`, or with the given signature. */
function token(header: unknown, payload: unknown, opts: { secret?: string; hash?: string; signature?: string } = {}): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const signature = opts.signature ?? createHmac(opts.hash ?? 'sha256', opts.secret ?? SECRET).update(input).digest('base64url');
  return `${input}.${signature}`;
}

type Verdict = { ok: true; sub: unknown; exp: unknown } | { ok: false; expired: boolean };

async function herald(config: VerifierConfig, t: string): Promise<Verdict> {
  try {
    const c = await createTokenVerifier(config)!.verify(t);
    return { ok: true, sub: c.sub, exp: c.exp };
  } catch (err) {
    assert.ok(err instanceof HeraldError, `a HeraldError, not ${String(err)}`);
    assert.ok(err.code === 'unauthorized' || err.code === 'token_expired', err.code);
    return { ok: false, expired: err.code === 'token_expired' };
  }
}

async function jose(config: VerifierConfig, t: string): Promise<Verdict> {
  try {
    const { payload } = await jwtVerify(t, new TextEncoder().encode(config.jwtSecret!), {
      algorithms: HMAC_ALGS,
      issuer: config.jwtIssuer,
      audience: config.jwtAudience,
      clockTolerance: config.jwtClockSkewSeconds,
      requiredClaims: ['sub', 'exp'],
    });
    // herald also refuses a `sub` that is not a non-empty string.
    if (typeof payload.sub !== 'string' || payload.sub === '') return { ok: false, expired: false };
    return { ok: true, sub: payload.sub, exp: payload.exp };
  } catch (err) {
    return { ok: false, expired: err instanceof errors.JWTExpired };
  }
}

describe('HS* tokens without jose', () => {
  const configs: VerifierConfig[] = [
    { jwtSecret: SECRET, jwtPublicKey: undefined, jwksUrl: undefined, jwtIssuer: undefined, jwtAudience: undefined, jwtClockSkewSeconds: 0, subscribeProxyUrl: undefined },
    { jwtSecret: SECRET, jwtPublicKey: undefined, jwksUrl: undefined, jwtIssuer: 'https://auth.example', jwtAudience: 'herald', jwtClockSkewSeconds: 30, subscribeProxyUrl: undefined },
  ];
  const hs = { alg: 'HS256', typ: 'JWT' };
  const later = () => now() + 3600;
  const cases: [string, () => string][] = [
    ['HS256', () => token(hs, { sub: 'u1', exp: later() })],
    ['HS384', () => token({ alg: 'HS384' }, { sub: 'u1', exp: later() }, { hash: 'sha384' })],
    ['HS512', () => token({ alg: 'HS512' }, { sub: 'u1', exp: later() }, { hash: 'sha512' })],
    ['HS384 header over an HS256 MAC', () => token({ alg: 'HS384' }, { sub: 'u1', exp: later() })],
    ['iss and aud as configured', () => token(hs, { sub: 'u1', exp: later(), iss: 'https://auth.example', aud: 'herald' })],
    ['aud as an array that holds it', () => token(hs, { sub: 'u1', exp: later(), iss: 'https://auth.example', aud: ['other', 'herald'] })],
    ['aud as an array without it', () => token(hs, { sub: 'u1', exp: later(), iss: 'https://auth.example', aud: ['other'] })],
    ['another issuer', () => token(hs, { sub: 'u1', exp: later(), iss: 'https://evil.example', aud: 'herald' })],
    ['expired an hour ago', () => token(hs, { sub: 'u1', exp: now() - 3600, iss: 'https://auth.example', aud: 'herald' })],
    ['expired 10 s ago (inside a 30 s skew)', () => token(hs, { sub: 'u1', exp: now() - 10, iss: 'https://auth.example', aud: 'herald' })],
    ['not before, in an hour', () => token(hs, { sub: 'u1', exp: later(), nbf: later() - 1800, iss: 'https://auth.example', aud: 'herald' })],
    ['not before, in 10 s', () => token(hs, { sub: 'u1', exp: later(), nbf: now() + 10, iss: 'https://auth.example', aud: 'herald' })],
    ['nbf a string', () => token(hs, { sub: 'u1', exp: later(), nbf: 'soon' })],
    ['iat a string', () => token(hs, { sub: 'u1', exp: later(), iat: 'today' })],
    ['iat a number', () => token(hs, { sub: 'u1', exp: later(), iat: now() })],
    ['exp a string', () => token(hs, { sub: 'u1', exp: String(later()) })],
    ['no exp', () => token(hs, { sub: 'u1' })],
    ['no sub', () => token(hs, { exp: later() })],
    ['sub a number', () => token(hs, { sub: 42, exp: later() })],
    ['sub empty', () => token(hs, { sub: '', exp: later() })],
    ['alg none, no signature', () => `${b64({ alg: 'none' })}.${b64({ sub: 'u1', exp: later() })}.`],
    ['alg none with a MAC', () => token({ alg: 'none' }, { sub: 'u1', exp: later() })],
    ['alg RS256 with a MAC over the secret', () => token({ alg: 'RS256' }, { sub: 'u1', exp: later() })],
    ['no alg', () => token({ typ: 'JWT' }, { sub: 'u1', exp: later() })],
    ['crit', () => token({ alg: 'HS256', crit: ['exp'], exp: 1 }, { sub: 'u1', exp: later() })],
    ['another secret', () => token(hs, { sub: 'u1', exp: later() }, { secret: 'another-secret-0123456789abcdef' })],
    ['payload changed after signing', () => {
      const [h, , s] = token(hs, { sub: 'u1', exp: later() }).split('.');
      return `${h}.${b64({ sub: 'admin', exp: later() })}.${s}`;
    }],
    ['signature cut short', () => token(hs, { sub: 'u1', exp: later() }).slice(0, -4)],
    ['signature padded', () => `${token(hs, { sub: 'u1', exp: later() })}=`],
    ['two parts', () => token(hs, { sub: 'u1', exp: later() }).split('.').slice(0, 2).join('.')],
    ['four parts', () => `${token(hs, { sub: 'u1', exp: later() })}.x`],
    ['header not JSON', () => token('{alg: HS256', { sub: 'u1', exp: later() })],
    ['header an array', () => token(['HS256'], { sub: 'u1', exp: later() })],
    ['payload an array', () => token(hs, [{ sub: 'u1' }])],
    ['payload not JSON', () => token(hs, 'sub=u1')],
    ['payload null', () => token(hs, 'null')],
    ['empty', () => '..'],
  ];

  for (const [i, config] of configs.entries()) {
    it(`gives jose's verdict on ${cases.length} tokens (${i === 0 ? 'no issuer, audience or skew' : 'JWT_ISSUER, JWT_AUDIENCE, a 30 s skew'})`, async () => {
      let accepted = 0;
      for (const [name, make] of cases) {
        const t = make();
        const [mine, reference] = [await herald(config, t), await jose(config, t)];
        assert.deepEqual(mine, reference, name);
        if (mine.ok) accepted++;
      }
      // Both outcomes are exercised: a checker that refused (or accepted) everything would fail above.
      assert.ok(accepted >= 3 && accepted < cases.length, `accepted ${accepted}`);
    });
  }

  it('refuses whitespace inside a part (jose strips it), and a token signed with the right secret passes', async () => {
    const good = token(hs, { sub: 'u1', exp: later() });
    assert.equal((await herald(configs[0]!, good)).ok, true);
    const spaced = `${good.slice(0, -6)} ${good.slice(-6)}`;
    assert.deepEqual(await herald(configs[0]!, spaced), { ok: false, expired: false });
  });
});
