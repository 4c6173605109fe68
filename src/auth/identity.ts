import type { Socket } from 'socket.io';
import { HeraldError } from '../errors.js';
import { isValidPattern, PatternTable } from '../protocol/patterns.js';
import { validateRoom, type RoomName } from '../protocol/rooms.js';

/** The private room of user `<id>`: every connection of that user joins it, nobody else may. */
export const USER_ROOM_PREFIX = 'user:';

/** Who is on a connection and what their token lets them do. */
export interface Identity {
  /** The token's `sub`; undefined for anonymous connections. */
  readonly userId: string | undefined;
  /** Patterns from the `rooms` claim: rooms this identity may subscribe to beyond the public ones. */
  readonly rooms: PatternTable<true>;
  /** Patterns from the `publish` claim: rooms this identity may publish to from the client. */
  readonly publish: PatternTable<true>;
  /** Token expiry, ms since the epoch. */
  readonly expiresAt: number | undefined;
  /** The token's `iat` (seconds since the epoch), which user revocations compare against. */
  readonly issuedAt: number | undefined;
  /** The token's `jti`, which token revocations name. */
  readonly tokenId: string | undefined;
  /** Every claim, kept only for SUBSCRIBE_PROXY_URL, which sends them to the backend. */
  readonly claims?: Readonly<Record<string, unknown>>;
}

/** The table of a claim with no patterns: one for every identity (a table is never changed once made). */
const NO_PATTERNS = new PatternTable<true>([]);

export const ANONYMOUS: Identity = Object.freeze({
  userId: undefined,
  rooms: NO_PATTERNS,
  publish: NO_PATTERNS,
  expiresAt: undefined,
  issuedAt: undefined,
  tokenId: undefined,
});

/** The identity established at connect (and replaced by `refresh`), kept in `socket.data`. */
export function identityOf(socket: Socket): Identity {
  return (socket.data as { identity?: Identity }).identity ?? ANONYMOUS;
}

/** Sets `socket`'s identity: at connect, and when `refresh` brings a new token (src/realtime/session.ts). */
export function setIdentity(socket: Socket, identity: Identity): void {
  (socket.data as { identity: Identity }).identity = identity;
}

/** Verified token claims as herald reads them. */
export interface Claims {
  sub: string;
  exp: number | undefined;
  iat: number | undefined;
  jti: string | undefined;
  rooms: unknown;
  publish: unknown;
  /** The whole payload, when someone needs more than the above (the subscribe proxy). */
  raw?: Readonly<Record<string, unknown>>;
}

export function identityFromClaims(claims: Claims): Identity {
  try {
    validateRoom(userRoom(claims.sub));
  } catch {
    throw new HeraldError('unauthorized', 'The token "sub" must be usable in a room name (A-Z a-z 0-9 _ - : . @ =, at most 123 characters).');
  }
  return {
    userId: claims.sub,
    rooms: patternsOf(claims.rooms),
    publish: patternsOf(claims.publish),
    expiresAt: claims.exp === undefined ? undefined : claims.exp * 1000,
    issuedAt: claims.iat,
    tokenId: claims.jti,
    ...(claims.raw ? { claims: claims.raw } : {}),
  };
}

export function userRoom(userId: string): RoomName {
  return `${USER_ROOM_PREFIX}${userId}`;
}

/** A claim listing room patterns; anything else in it is ignored (a token cannot widen access by malformation). */
function patternsOf(claim: unknown): PatternTable<true> {
  const list = Array.isArray(claim) ? claim.filter((p): p is string => typeof p === 'string' && isValidPattern(p)) : [];
  // Most tokens carry neither claim: they share one empty table rather than two per connection.
  if (list.length === 0) return NO_PATTERNS;
  return new PatternTable(list.map((pattern) => ({ pattern, value: true as const })));
}
