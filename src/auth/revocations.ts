import { batchedReads } from '../cluster/read-batch.js';
import type { RedisClient } from '../cluster/redis.js';
import { HeraldError } from '../errors.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Claims } from './identity.js';
import type { TokenVerifier } from './jwt.js';

/** What a revocation is matched against: a token's `sub`, `iat` (seconds) and `jti`. */
export interface TokenRef {
  readonly user: string | undefined;
  readonly issuedAt: number | undefined;
  readonly tokenId: string | undefined;
}

/**
 * The latest time (seconds since the epoch) a revocation may name: 9999-12-31T23:59:59Z. Later
 * ones are no time a token carries, and their expiry in ms would pass what Redis takes as an
 * integer (`1e18` became `"1e+21"`, which PEXPIRE refuses). Times run from 0 to this.
 */
export const LATEST_REVOCATION_SECONDS = 253_402_300_799;

/** One revocation, as the control API takes it; `keepUntil` is when no token it matches can still be valid (ms). */
export type Revocation =
  | { readonly user: string; readonly issuedBefore: number; readonly keepUntil: number }
  | { readonly jti: string; readonly keepUntil: number };

/**
 * The tokens that are no longer accepted, shared by every replica.
 * - A user revocation refuses every token of that `sub` whose `iat` is before `issuedBefore`
 *   (seconds since the epoch), and every token of that `sub` without an `iat`. A later
 *   revocation of the same user with an earlier `issuedBefore` never narrows it.
 * - A token revocation refuses the token with that `jti`.
 * - Each is kept until its `keepUntil`, never shorter than one already kept.
 * `revoke` resolves once the revocation is durable for every replica's next check; `isRevoked`
 * rejects when the store cannot answer (the caller decides what that means).
 */
export interface Revocations {
  revoke(r: Revocation): Promise<void>;
  isRevoked(token: TokenRef): Promise<boolean>;
}

/**
 * In memory: the store of a single node, and every replica's copy of the revocations it has
 * heard of. Synchronous underneath, so a replica can record a revocation and sweep its
 * connections in one turn of the event loop, leaving no gap for a connection to slip through.
 */
export class MemoryRevocations implements Revocations {
  private readonly users = new Map<string, { issuedBefore: number; keepUntil: number }>();
  private readonly tokens = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  record(r: Revocation): void {
    this.prune();
    if ('user' in r) {
      const had = this.users.get(r.user);
      this.users.set(r.user, {
        issuedBefore: Math.max(had?.issuedBefore ?? -Infinity, r.issuedBefore),
        keepUntil: Math.max(had?.keepUntil ?? 0, r.keepUntil),
      });
    } else {
      this.tokens.set(r.jti, Math.max(this.tokens.get(r.jti) ?? 0, r.keepUntil));
    }
  }

  matches(token: TokenRef): boolean {
    const now = this.now();
    if (token.user !== undefined) {
      const u = this.users.get(token.user);
      if (u && u.keepUntil > now && (token.issuedAt === undefined || token.issuedAt < u.issuedBefore)) return true;
    }
    if (token.tokenId !== undefined) {
      const until = this.tokens.get(token.tokenId);
      if (until !== undefined && until > now) return true;
    }
    return false;
  }

  async revoke(r: Revocation): Promise<void> {
    this.record(r);
  }

  async isRevoked(token: TokenRef): Promise<boolean> {
    return this.matches(token);
  }

  private prune(): void {
    const now = this.now();
    for (const [k, v] of this.users) if (v.keepUntil <= now) this.users.delete(k);
    for (const [k, until] of this.tokens) if (until <= now) this.tokens.delete(k);
  }
}

/** Longest a check waits for Redis after the replica started (ioredis's connect timeout). */
const FIRST_CONNECT_WAIT_MS = 5000;

/**
 * Keeps the larger of the stored and the given value, and the later of the two expiries, so
 * revoking again can only widen a revocation. KEYS[1]; ARGV: value, expiry (ms from now).
 */
const KEEP_WIDEST = `
local cur = tonumber(redis.call('GET', KEYS[1]))
if cur == nil or tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL') end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`;

/**
 * In Redis, one key per revoked user (`<prefix>-revoked-user:<sub>`, holding `issuedBefore`) and
 * per revoked token (`<prefix>-revoked-jti:<jti>`), each expiring at its `keepUntil`. Single-key
 * operations only, so it works the same on a Redis Cluster; a check is two GETs in parallel.
 */
export function createRedisRevocations(opts: { redis: RedisClient; keyPrefix: string; now?: () => number; firstConnectWaitMs?: number }): Revocations {
  const { redis } = opts;
  const reads = batchedReads(redis);
  const now = opts.now ?? Date.now;
  // A replica that has just started knows of no revocation but what Redis holds: until Redis is
  // first ready, checks wait for it (bounded) rather than fail at once and let a revoked token in.
  let firstReady: Promise<void> | undefined =
    redis.status === 'ready'
      ? undefined
      : new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('Redis not ready since start')), opts.firstConnectWaitMs ?? FIRST_CONNECT_WAIT_MS);
          redis.once('ready', () => {
            clearTimeout(timer);
            firstReady = undefined;
            resolve();
          });
        });
  // Rejections are seen by the checks awaiting it; this one only keeps an unawaited one quiet.
  firstReady?.catch(() => {});
  const userKey = (user: string) => `${opts.keyPrefix}-revoked-user:${user}`;
  const tokenKey = (jti: string) => `${opts.keyPrefix}-revoked-jti:${jti}`;
  return {
    async revoke(r) {
      const ttl = Math.ceil(r.keepUntil - now());
      if (ttl <= 0) return; // nothing it matches can still be valid
      if ('user' in r) await redis.eval(KEEP_WIDEST, 1, userKey(r.user), String(r.issuedBefore), String(ttl));
      else await redis.eval(KEEP_WIDEST, 1, tokenKey(r.jti), '1', String(ttl));
    },
    async isRevoked(token) {
      if (firstReady) await firstReady;
      const [issuedBefore, jti] = await Promise.all([
        token.user === undefined ? null : reads.get(userKey(token.user)),
        token.tokenId === undefined ? null : reads.get(tokenKey(token.tokenId)),
      ]);
      if (jti !== null) return true;
      return issuedBefore !== null && (token.issuedAt === undefined || token.issuedAt < Number(issuedBefore));
    },
  };
}

export function tokenRefOf(claims: Pick<Claims, 'sub' | 'iat' | 'jti'>): TokenRef {
  return { user: claims.sub, issuedAt: claims.iat, tokenId: claims.jti };
}

/**
 * A verifier that also refuses revoked tokens with `token_revoked`. Every path that verifies a
 * token goes through it: the handshake, `refresh`, and session recovery once there is one.
 * `known` is this replica's own copy of the revocations it has heard of; it decides alone when
 * the shared store is unreachable (counted, and logged at most every 10 s): herald keeps
 * accepting valid tokens through a Redis outage rather than refusing every client.
 */
export function refusingRevoked(
  verifier: TokenVerifier,
  deps: { known: MemoryRevocations; shared: Revocations | undefined; metrics: Metrics; logger: Logger },
): TokenVerifier {
  const failureLog = throttle(10_000);
  return {
    async verify(token) {
      const claims = await verifier.verify(token);
      const ref = tokenRefOf(claims);
      let revoked = deps.known.matches(ref);
      if (!revoked && deps.shared) {
        try {
          revoked = await deps.shared.isRevoked(ref);
        } catch (err) {
          deps.metrics.revocationCheckFailed();
          if (failureLog.due()) deps.logger.warn({ err: (err as Error).message }, 'revocations unreachable; judging tokens on the revocations this replica has heard of');
        }
      }
      if (revoked) throw new HeraldError('token_revoked');
      return claims;
    },
  };
}
