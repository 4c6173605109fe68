import { createPublicKey } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { hasAuth, integer, JWT_SECRET_MIN_LENGTH, list, readJwksFile, readPem, setting } from '../parse.js';
import { isValidPattern } from '../../protocol/patterns.js';

/** Connection tokens, public rooms, anonymous clients, browser origins. */
export const AUTH_SETTINGS = [
  setting({
    env: 'JWT_SECRET',
    key: 'jwtSecret',
    doc: 'Shared secret (at least 32 characters) for HS256/HS384/HS512 connection tokens. Set at most one of `JWT_SECRET`, `JWT_PUBLIC_KEY`, `JWKS_URL`; with none, clients connect anonymously (refused at start when `NODE_ENV=production`).',
    defaultText: '(unset)',
    parse: (raw, env) => {
      const sources = ['JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWKS_URL'].filter((k) => env[k]);
      if (sources.length > 1) throw new Error(`conflicts with ${sources.filter((k) => k !== 'JWT_SECRET').join(', ')}: set only one token key source`);
      if (sources.length === 0 && !env.CONNECT_PROXY_URL && env.NODE_ENV === 'production') {
        throw new Error('(or JWT_PUBLIC_KEY, JWKS_URL or CONNECT_PROXY_URL) must be set when NODE_ENV=production: anonymous-only is for development');
      }
      if (raw && raw.length < JWT_SECRET_MIN_LENGTH) throw new Error(`must be at least ${JWT_SECRET_MIN_LENGTH} characters long`);
      return raw || undefined;
    },
  }),
  setting({
    env: 'JWT_PUBLIC_KEY',
    key: 'jwtPublicKey',
    doc: 'PEM public key (RSA for RS256, EC P-256 for ES256) for connection tokens, or the path of a PEM file.',
    defaultText: '(unset)',
    parse: (raw) => {
      if (!raw) return undefined;
      const pem = raw.includes('-----BEGIN') ? raw.replace(/\\n/g, '\n') : readPem(raw);
      try {
        const key = createPublicKey(pem);
        if (key.asymmetricKeyType !== 'rsa' && !(key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')) {
          throw new Error(`is a ${key.asymmetricKeyType} key; use RSA (RS256) or EC P-256 (ES256)`);
        }
      } catch (err) {
        throw new Error(err instanceof Error && err.message.startsWith('is a') ? err.message : 'is not a PEM public key');
      }
      return pem;
    },
  }),
  setting({
    env: 'JWKS_URL',
    key: 'jwksUrl',
    doc: 'JWKS of the token issuer: an `https://` URL (fetched and cached) or a `file:` URL. Plain `http://` only for a loopback host (127.0.0.0/8, `::1`, `localhost`) and not when `NODE_ENV=production`: anyone on the path of an http fetch could hand herald their own keys.',
    defaultText: '(unset)',
    parse: (raw, env) => {
      if (!raw) return undefined;
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        throw new Error('must be an http(s):// or file: URL');
      }
      if (!['https:', 'http:', 'file:'].includes(url.protocol)) throw new Error('must be an http(s):// or file: URL');
      if (url.protocol === 'file:') readJwksFile(url);
      if (url.protocol === 'http:') {
        // Keys fetched in the clear can be swapped in transit: whoever does that signs any token.
        if (env.NODE_ENV === 'production') throw new Error('must be an https:// or file: URL when NODE_ENV=production, got http://');
        if (!isLoopbackHost(url.hostname)) {
          throw new Error(`must be an https:// or file: URL; http:// is accepted only for a loopback host (127.0.0.0/8, ::1, localhost), not "${url.hostname}"`);
        }
      }
      return url;
    },
  }),
  setting({
    env: 'JWT_ISSUER',
    key: 'jwtIssuer',
    doc: 'When set, tokens must carry this `iss`.',
    defaultText: '(unset)',
    parse: (raw) => raw || undefined,
  }),
  setting({
    env: 'JWT_AUDIENCE',
    key: 'jwtAudience',
    doc: 'When set, tokens must carry this `aud`.',
    defaultText: '(unset)',
    parse: (raw) => raw || undefined,
  }),
  setting({
    env: 'JWT_CLOCK_SKEW_SECONDS',
    key: 'jwtClockSkewSeconds',
    doc: 'Allowance for clocks that disagree: a token is valid until `exp` plus this, at connect and for the expiry disconnect.',
    defaultText: '30',
    parse: integer(0, 300, 30),
  }),
  setting({
    env: 'PUBLIC_ROOMS',
    key: 'publicRooms',
    doc: 'Comma-separated room patterns any connected client may subscribe to (e.g. `scores:*`); other rooms need a token whose `rooms` claim matches. `user:<id>` rooms are never public.',
    defaultText: '`*` without auth; none with auth',
    parse: (raw, env) => {
      const patterns = raw === undefined ? (hasAuth(env) ? [] : ['*']) : list(raw);
      const bad = patterns.filter((p) => !isValidPattern(p));
      if (bad.length > 0) throw new Error(`has bad pattern(s) ${bad.join(', ')}: use room characters and *`);
      return Object.freeze(patterns);
    },
  }),
  setting({
    env: 'ALLOW_ANONYMOUS',
    key: 'allowAnonymous',
    doc: 'Whether clients without a token may connect (to public rooms only).',
    defaultText: '`true` without auth; `false` with auth',
    parse: (raw, env) => {
      if (raw === undefined || raw === '') return !hasAuth(env);
      if (raw !== 'true' && raw !== 'false') throw new Error(`must be true or false, got "${raw}"`);
      if (raw === 'false' && !hasAuth(env)) throw new Error('cannot be false without JWT_SECRET, JWT_PUBLIC_KEY, JWKS_URL or CONNECT_PROXY_URL');
      return raw === 'true';
    },
  }),
  setting({
    env: 'CORS_ORIGINS',
    key: 'corsOrigins',
    doc: 'Comma-separated browser origins allowed to connect (`https://app.example.com`), or `*`. Checked on every Socket.IO handshake that carries an `Origin` (WebSocket too).',
    defaultText: '`*`; none when `NODE_ENV=production`',
    parse: (raw, env) => {
      const origins = raw === undefined ? (env.NODE_ENV === 'production' ? [] : ['*']) : list(raw);
      for (const o of origins) {
        if (o === '*') continue;
        let url: URL | undefined;
        try {
          url = new URL(o);
        } catch {
          url = undefined;
        }
        if (!url || url.origin !== o) throw new Error(`has "${o}", which is not an origin like https://app.example.com`);
      }
      return Object.freeze(origins);
    },
  }),
] as const;

/** 127.0.0.0/8, ::1 (URL keeps IPv6 hosts in brackets) and localhost. */
function isLoopbackHost(hostname: string): boolean {
  if (hostname === 'localhost' || hostname === '[::1]') return true;
  return isIPv4(hostname) && hostname.startsWith('127.');
}
