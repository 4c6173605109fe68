import { SignJWT } from 'jose';
import { createTokenVerifier, type VerifierConfig } from '../auth/jwt.js';
import { userRoom } from '../auth/identity.js';
import { loadSettings } from '../config/load.js';
import { JTI_MAX_LENGTH } from '../control/commands.js';
import { HeraldError } from '../errors.js';
import { isValidPattern } from '../protocol/patterns.js';
import { validateRoom } from '../protocol/rooms.js';
import { CommandFailed, EXIT, list, parseOptions, text, UsageError, type Command } from './command.js';
import { signingKey } from './signing-key.js';

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;
const MAX_TTL_SECONDS = 366 * 86_400;

/** `herald token`: a connection token herald, run with the same environment, accepts. */
export const token: Command = {
  name: 'token',
  summary: 'sign a connection token (JWT) that herald with this environment accepts',
  help: `Usage: herald token --sub <user id> [--rooms <patterns>] [--publish <patterns>] [--ttl <lifetime>]
                    [--jti <id>] [--key <private key file>] [--alg <alg>] [--kid <key id>]

Prints a JWT for socket.io-client's auth: { token }. It is signed with JWT_SECRET from the
environment, or with --key when herald verifies with JWT_PUBLIC_KEY or JWKS_URL; "iss" and "aud"
come from JWT_ISSUER and JWT_AUDIENCE when they are set. Before printing, the token is verified as
herald would verify it with this environment (not against an http(s) JWKS_URL, which herald fetches).

Options:
  --sub <user id>       the user ("sub"); the connection joins user:<sub>. Required.
  --rooms <patterns>    room patterns it may subscribe to ("rooms" claim), comma-separated or repeated:
                        --rooms 'chat:team-42,orders:*'
  --publish <patterns>  room patterns it may publish to from the client ("publish" claim)
  --ttl <lifetime>      seconds, or with a unit: 90s, 15m, 1h, 7d (default 1h, at most 366d). Sets
                        "iat" (now) and "exp" (now + ttl), both in seconds since the epoch.
  --jti <id>            token id, for revoking this one token: POST /v1/revoke {"jti": "<id>"}
  --key <file>          PEM private key (RSA, EC P-256/P-384, Ed25519) matching JWT_PUBLIC_KEY or a key of
                        JWKS_URL. Not with JWT_SECRET.
  --alg <alg>           HS256 (default), HS384, HS512 with JWT_SECRET; with --key, one that fits the key
                        (default RS256 for RSA, ES256 for P-256, ES384 for P-384, EdDSA for Ed25519)
  --kid <key id>        "kid" header, to pick the key in a JWKS

Example:
  JWT_SECRET=... herald token --sub alice --rooms 'chat:*' --ttl 15m
`,
  async run(args, io) {
    const o = parseOptions(args, {
      sub: { type: 'string' },
      rooms: { type: 'string', multiple: true },
      publish: { type: 'string', multiple: true },
      ttl: { type: 'string' },
      jti: { type: 'string' },
      key: { type: 'string' },
      alg: { type: 'string' },
      kid: { type: 'string' },
    });
    if (!o) {
      io.out(this.help);
      return EXIT.ok;
    }
    const sub = subject(text(o, 'sub'));
    const rooms = patterns(o, 'rooms');
    const publish = patterns(o, 'publish');
    const ttl = lifetime(text(o, 'ttl') ?? '1h');
    const jti = text(o, 'jti');
    if (jti !== undefined && (jti.length === 0 || jti.length > JTI_MAX_LENGTH)) throw new UsageError(`--jti must be 1-${JTI_MAX_LENGTH} characters`);
    const kid = text(o, 'kid');

    const settings = loadSettings(io.env, ['jwtSecret', 'jwtPublicKey', 'jwksUrl', 'jwtIssuer', 'jwtAudience', 'jwtClockSkewSeconds', 'revocationTtlSeconds']);
    const { key, alg } = signingKey(settings, text(o, 'key'), text(o, 'alg'));
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT({ ...(rooms.length > 0 ? { rooms } : {}), ...(publish.length > 0 ? { publish } : {}) })
      .setProtectedHeader({ alg, typ: 'JWT', ...(kid ? { kid } : {}) })
      .setSubject(sub)
      .setIssuedAt(now)
      .setExpirationTime(now + ttl);
    if (jti !== undefined) jwt.setJti(jti);
    if (settings.jwtIssuer) jwt.setIssuer(settings.jwtIssuer);
    if (settings.jwtAudience) jwt.setAudience(settings.jwtAudience);
    const signed = await jwt.sign(key);

    const verifiable = settings.jwtSecret || settings.jwtPublicKey || settings.jwksUrl?.protocol === 'file:';
    if (verifiable) {
      await verifyAsHerald(signed, settings);
    } else {
      io.err(`herald token: note: not checked: ${settings.jwksUrl ? 'herald fetches JWKS_URL, herald token does not' : 'no JWT_PUBLIC_KEY or JWKS_URL is set here'}\n`);
    }
    if (ttl > settings.revocationTtlSeconds) {
      io.err(`herald token: warning: --ttl (${ttl} s) is longer than REVOCATION_TTL_SECONDS (${settings.revocationTtlSeconds} s): a user revocation would expire before this token does\n`);
    }
    io.out(`${signed}\n`);
    return EXIT.ok;
  },
};

async function verifyAsHerald(signed: string, settings: Omit<VerifierConfig, 'subscribeProxyUrl'>): Promise<void> {
  try {
    await createTokenVerifier({ ...settings, subscribeProxyUrl: undefined })!.verify(signed);
  } catch (err) {
    const why = err instanceof HeraldError ? err.message : String(err);
    throw new CommandFailed(`herald with this environment would refuse the token: ${why}`);
  }
}

function subject(sub: string | undefined): string {
  if (sub === undefined || sub === '') throw new UsageError('--sub <user id> is required');
  try {
    validateRoom(userRoom(sub));
  } catch {
    throw new UsageError(`--sub "${sub}" must be usable in a room name (user:<sub>): A-Z a-z 0-9 _ - : . @ =, at most 123 characters`);
  }
  return sub;
}

function patterns(o: Readonly<Record<string, unknown>>, name: string): string[] {
  const all = list(o, name);
  const bad = all.filter((p) => !isValidPattern(p));
  if (bad.length > 0) throw new UsageError(`--${name} has bad pattern(s) ${bad.join(', ')}: use room characters (A-Z a-z 0-9 _ - : . @ =) and *`);
  return all;
}

/** `3600`, `90s`, `15m`, `1h`, `7d` in seconds. */
export function lifetime(raw: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(raw);
  const seconds = m ? Number(m[1]) * UNIT_SECONDS[(m[2] || 's') as keyof typeof UNIT_SECONDS] : NaN;
  if (!(seconds >= 1 && seconds <= MAX_TTL_SECONDS)) {
    throw new UsageError(`--ttl must be a lifetime from 1s to 366d: seconds (3600) or with a unit (90s, 15m, 1h, 7d), got "${raw}"`);
  }
  return seconds;
}
