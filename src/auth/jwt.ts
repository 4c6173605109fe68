import { createPublicKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
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
  let key: KeyObject | JWTVerifyGetKey;
  let algorithms: string[];
  if (config.jwtSecret) {
    key = hmacKeys(new TextEncoder().encode(config.jwtSecret));
    algorithms = HMAC_ALGS;
  } else if (config.jwtPublicKey) {
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
  return {
    async verify(token) {
      if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
        throw new HeraldError('unauthorized', 'The token must be a JWT string.');
      }
      try {
        const { payload } = typeof key === 'function' ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
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

/**
 * The secret as one WebCrypto key per HS* algorithm, imported once: given the raw bytes, jose
 * imports them again at every verify (a good part of a handshake's CPU in a reconnect storm).
 * jose has refused any other `alg` before it asks for the key.
 */
function hmacKeys(secret: Uint8Array<ArrayBuffer>): JWTVerifyGetKey {
  const keys = new Map(
    HMAC_ALGS.map((alg) => {
      const imported = crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: `SHA-${alg.slice(2)}` }, false, ['verify']);
      // A failure reaches each verify that awaits it (refused as `unauthorized`); this copy only keeps it from going unhandled.
      imported.catch(() => {});
      return [alg, imported] as const;
    }),
  );
  return (header) => {
    const k = keys.get(header.alg ?? '');
    if (!k) throw new errors.JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed');
    return k;
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
