import { createHmac, createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { readJwksFile } from '../config/parse.js';
import type { Config } from '../config/schema.js';
import { HeraldError } from '../errors.js';
import type { Claims } from './identity.js';

/** Tokens are small; anything bigger is refused before parsing. */
export const MAX_TOKEN_LENGTH = 8192;

export interface TokenVerifier {
  /** Resolves with the claims of a valid token; rejects with `unauthorized` or `token_expired`. */
  verify(token: unknown): Promise<Claims>;
}

/** Algorithms accepted with an RSA JWT_PUBLIC_KEY (an EC one takes ES256 only). */
export const RSA_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
/** Algorithms accepted from a JWKS. */
export const JWKS_ALGS = [...RSA_ALGS, 'ES256', 'ES384', 'EdDSA'];
/** Algorithms accepted with JWT_SECRET. */
export const HMAC_ALGS = ['HS256', 'HS384', 'HS512'];

/** The settings a verifier reads (`herald token` builds one from these alone to check what it signed). */
export type VerifierConfig = Pick<
  Config,
  'jwtSecret' | 'jwtPublicKey' | 'jwksUrl' | 'jwtIssuer' | 'jwtAudience' | 'jwtClockSkewSeconds' | 'subscribeProxyUrl'
>;

/**
 * The verifier for the configured key source, or undefined when none is configured. The allowed
 * algorithms follow from the key: a shared secret only verifies HS*, a public key or JWKS never
 * does, so an HS256 token "signed" with the public key (algorithm confusion) and `alg: none`
 * tokens are both refused.
 */
export function createTokenVerifier(config: VerifierConfig): TokenVerifier | undefined {
  const check = payloadChecker(config);
  if (!check) return undefined;
  return {
    async verify(token) {
      if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
        throw new HeraldError('unauthorized', 'The token must be a JWT string.');
      }
      try {
        const payload = await check(token);
        if (typeof payload.sub !== 'string' || payload.sub.length === 0) throw new HeraldError('unauthorized', 'The token has no "sub".');
        return {
          sub: payload.sub,
          exp: payload.exp,
          iat: payload.iat,
          jti: typeof payload.jti === 'string' ? payload.jti : undefined,
          rooms: payload.rooms,
          publish: payload.publish,
          // Kept per connection only when the subscribe proxy will send them on.
          ...(config.subscribeProxyUrl ? { raw: payload } : {}),
        };
      } catch (err) {
        if (err instanceof HeraldError) throw err;
        if (err instanceof errors.JWTExpired) throw new HeraldError('token_expired', undefined, { cause: err });
        const reason = err instanceof errors.JOSEError ? err.code : 'invalid token';
        throw new HeraldError('unauthorized', `The token was refused (${reason}).`, { cause: err });
      }
    },
  };
}

/** Checks a token against the configured key source and returns its claims; undefined when none is configured. */
function payloadChecker(config: VerifierConfig): ((token: string) => JWTPayload | Promise<JWTPayload>) | undefined {
  if (config.jwtSecret) return hmacVerifier(Buffer.from(config.jwtSecret, 'utf8'), config);
  let key: KeyObject | JWTVerifyGetKey;
  let algorithms: string[];
  if (config.jwtPublicKey) {
    const pub = createPublicKey(config.jwtPublicKey);
    key = pub;
    algorithms = pub.asymmetricKeyType === 'rsa' ? RSA_ALGS : ['ES256'];
  } else if (config.jwksUrl) {
    key =
      config.jwksUrl.protocol === 'file:'
        ? createLocalJWKSet(localJwks(config.jwksUrl))
        : createRemoteJWKSet(config.jwksUrl, { timeoutDuration: 5000, cooldownDuration: 30_000 });
    algorithms = JWKS_ALGS;
  } else {
    return undefined;
  }
  const options = {
    algorithms,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    clockTolerance: config.jwtClockSkewSeconds,
    requiredClaims: ['sub', 'exp'],
  };
  return async (token) => (typeof key === 'function' ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options)).payload;
}

/**
 * The characters of a base64url segment (RFC 7515 §2), with the padding jose also accepts.
 * Whitespace inside a part, which jose strips, is refused.
 */
const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

/** A token refused the way jose would say it (its error codes), as `unauthorized`. */
function refused(code: string, why: string): never {
  throw new HeraldError('unauthorized', `The token was refused (${code}).`, { cause: new Error(why) });
}

/** A segment decoded as a JSON object (not an array, not null), or refused. */
function jsonObject(segment: string, code: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    refused(code, 'not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) refused(code, 'not a JSON object');
  return value as Record<string, unknown>;
}

/**
 * HS256/384/512 tokens checked with node:crypto, synchronously. jose goes through WebCrypto for
 * HMAC (an async `subtle.verify` per token): in a reconnect storm (bench/scale/reconnect.ts, CPU
 * profile of the replica the fans land on) its signature check took about 10 % of the replica's
 * busy time, 40–50 µs per token against 5–6 µs here. The same rules as `jwtVerify` with the
 * options above: a compact JWS of three base64url parts; a header object whose `alg` is HS*
 * (anything else, `none` included, refused before the signature), no `crit` (no extension is
 * understood); the HMAC compared in constant time; then the claims: a JSON object with `sub` and
 * `exp`; `exp` a number, not reached (less `JWT_CLOCK_SKEW_SECONDS`: `token_expired`); `nbf` and
 * `iat` numbers when present, `nbf` reached; `iss` and `aud` as configured.
 */
function hmacVerifier(secret: Buffer, config: Pick<VerifierConfig, 'jwtIssuer' | 'jwtAudience' | 'jwtClockSkewSeconds'>): (token: string) => JWTPayload {
  const tolerance = config.jwtClockSkewSeconds;
  return (token) => {
    const parts = token.split('.');
    if (parts.length !== 3) refused('ERR_JWS_INVALID', 'not three parts');
    const [h, p, s] = parts as [string, string, string];
    if (!BASE64URL.test(h) || !BASE64URL.test(p) || !BASE64URL.test(s)) refused('ERR_JWS_INVALID', 'not base64url');
    const header = jsonObject(h, 'ERR_JWS_INVALID');
    const alg = header.alg;
    if (typeof alg !== 'string' || !HMAC_ALGS.includes(alg)) refused('ERR_JOSE_ALG_NOT_ALLOWED', `alg ${String(alg)}`);
    if (header.crit !== undefined) refused('ERR_JOSE_NOT_SUPPORTED', 'crit');
    const mac = createHmac(`sha${alg.slice(2)}`, secret).update(`${h}.${p}`).digest();
    const signature = Buffer.from(s, 'base64url');
    if (signature.length !== mac.length || !timingSafeEqual(signature, mac)) refused('ERR_JWS_SIGNATURE_VERIFICATION_FAILED', 'signature');
    const payload = jsonObject(p, 'ERR_JWT_INVALID') as JWTPayload;
    const now = Math.floor(Date.now() / 1000);
    const claim = (why: string): never => refused('ERR_JWT_CLAIM_VALIDATION_FAILED', why);
    if (payload.sub === undefined) claim('missing sub');
    if (typeof payload.exp !== 'number') claim('exp missing or not a number');
    if (payload.iat !== undefined && typeof payload.iat !== 'number') claim('iat not a number');
    if (payload.nbf !== undefined && (typeof payload.nbf !== 'number' || payload.nbf > now + tolerance)) claim('nbf');
    if (config.jwtIssuer !== undefined && payload.iss !== config.jwtIssuer) claim('iss');
    if (config.jwtAudience !== undefined) {
      const aud = payload.aud;
      if (!(aud === config.jwtAudience || (Array.isArray(aud) && aud.includes(config.jwtAudience)))) claim('aud');
    }
    if ((payload.exp as number) <= now - tolerance) throw new HeraldError('token_expired');
    return payload;
  };
}

/** A `file:` JWKS, checked by the configuration already; changed since into something unusable, it is refused the same way. */
function localJwks(url: URL): JSONWebKeySet {
  try {
    return readJwksFile(url);
  } catch (err) {
    throw new HeraldError('config_invalid', `JWKS_URL ${(err as Error).message}`, { cause: err });
  }
}
