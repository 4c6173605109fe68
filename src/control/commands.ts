import { userRoom } from '../auth/identity.js';
import { LATEST_REVOCATION_SECONDS } from '../auth/revocations.js';
import { HeraldError } from '../errors.js';
import { isConnectionRoom, validateRoom, type RoomName } from '../protocol/rooms.js';

/** A Socket.IO connection id, as `herald:join` and `GET /v1/users/:user` show it. */
export type ClientId = string;

/** Whose connections a command acts on: every connection of a user, or one connection. */
export type Target = { readonly user: string } | { readonly client: ClientId };

export type DisconnectCommand = { readonly kind: 'disconnect'; readonly target: Target; readonly reason?: string };
export type MembershipCommand = { readonly kind: 'subscribe' | 'unsubscribe'; readonly target: Target; readonly room: RoomName };
/** Disconnect the connections holding revoked tokens: a user's issued before `issuedBefore` (seconds), or one `jti`. */
export type RevokeCommand =
  | { readonly kind: 'revoke'; readonly user: string; readonly issuedBefore: number; readonly keepUntil: number }
  | { readonly kind: 'revoke'; readonly jti: string; readonly keepUntil: number };
export type ListCommand = { readonly kind: 'list'; readonly user: string };

/**
 * A command every replica applies to its own connections. The same shape travels over HTTP
 * (after validation) and between replicas (checked again on arrival: the bus is not trusted to
 * carry only what herald sent).
 */
export type Command = DisconnectCommand | MembershipCommand | RevokeCommand | ListCommand;

export type CommandKind = Command['kind'];

/** One connection as `GET /v1/users/:user` lists it. */
export interface ConnectionInfo {
  client: ClientId;
  replica: string;
  transport: string;
  /** Its rooms, its own id room left out. */
  rooms: RoomName[];
  /** ms since the epoch. */
  connectedAt: number;
}

/** What one replica did with a command. */
export interface Report {
  replica: string;
  /** Connections the command matched there. */
  count: number;
  /** `list` only. */
  connections?: ConnectionInfo[];
}

export const REASON_MAX_LENGTH = 256;
export const JTI_MAX_LENGTH = 256;

/** Returns `body` as an object with no fields but `allowed`, or throws `bad_request`. */
function fieldsOf(body: unknown, allowed: readonly string[], shape: string): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HeraldError('bad_request', `The body must be a JSON object ${shape}.`);
  }
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) throw new HeraldError('bad_request', `Unknown field(s): ${unknown.join(', ')}. Send ${shape}.`);
  return fields;
}

/** A user id: a token `sub` that makes a valid `user:<sub>` room. */
export function validateUser(input: unknown): string {
  if (typeof input === 'string' && input.length > 0) {
    try {
      validateRoom(userRoom(input));
      return input;
    } catch {
      // reported below
    }
  }
  throw new HeraldError('bad_request', '"user" must be a token "sub": 1-123 characters of A-Z a-z 0-9 _ - : . @ =.');
}

function validateClient(input: unknown): ClientId {
  if (typeof input !== 'string' || !isConnectionRoom(input)) {
    throw new HeraldError('bad_request', '"client" must be a connection id (20 characters of A-Z a-z 0-9 _ -), as GET /v1/users/:user lists them.');
  }
  return input;
}

function targetOf(fields: Record<string, unknown>): Target {
  const hasUser = Object.hasOwn(fields, 'user');
  if (hasUser === Object.hasOwn(fields, 'client')) throw new HeraldError('bad_request', 'Send exactly one of "user" or "client".');
  return hasUser ? { user: validateUser(fields.user) } : { client: validateClient(fields.client) };
}

/** `{user | client, reason?}` for `POST /v1/disconnect`. */
export function parseDisconnect(body: unknown): DisconnectCommand {
  const fields = fieldsOf(body, ['user', 'client', 'reason'], '{user | client, reason?}');
  const target = targetOf(fields);
  const reason = fields.reason;
  if (reason === undefined) return { kind: 'disconnect', target };
  if (typeof reason !== 'string' || reason.length > REASON_MAX_LENGTH) {
    throw new HeraldError('bad_request', `"reason" must be a string of at most ${REASON_MAX_LENGTH} characters.`);
  }
  return { kind: 'disconnect', target, reason };
}

/** `{user | client, room}` for `POST /v1/subscribe` and `/v1/unsubscribe`. */
export function parseMembership(kind: 'subscribe' | 'unsubscribe', body: unknown): MembershipCommand {
  const fields = fieldsOf(body, ['user', 'client', 'room'], '{user | client, room}');
  const target = targetOf(fields);
  if (!Object.hasOwn(fields, 'room')) throw new HeraldError('bad_request', 'Missing field "room".');
  const room = validateRoom(fields.room);
  // Another connection's id room would hand its messages to whoever is put in it.
  if (isConnectionRoom(room)) throw new HeraldError('invalid_room', `"${room}" has the shape of a connection id (20 letters, digits, _ or -); such rooms are reserved.`);
  return { kind, target, room };
}

/**
 * `{user, issuedBefore?}` or `{jti, expiresAt?}` for `POST /v1/revoke`, both in seconds since
 * the epoch. `keepUntil` (ms) is when no token it matches can still be valid: `issuedBefore`
 * plus the longest token lifetime (`ttlSeconds`), or `expiresAt` (else now plus `ttlSeconds`),
 * plus the clock-skew allowance tokens are granted.
 */
export function parseRevoke(body: unknown, now: number, ttlSeconds: number, skewMs: number): RevokeCommand {
  const fields = fieldsOf(body, ['user', 'issuedBefore', 'jti', 'expiresAt'], '{user, issuedBefore?} or {jti, expiresAt?}');
  const hasUser = Object.hasOwn(fields, 'user');
  if (hasUser === Object.hasOwn(fields, 'jti')) throw new HeraldError('bad_request', 'Send exactly one of "user" or "jti".');
  const seconds = (name: string): number | undefined => {
    const v = fields[name];
    if (v === undefined) return undefined;
    if (!isRevocationTime(v)) {
      throw new HeraldError('bad_request', `"${name}" must be a time in seconds since the epoch, from 0 to ${LATEST_REVOCATION_SECONDS} (9999-12-31T23:59:59Z).`);
    }
    return v;
  };
  if (hasUser) {
    if (Object.hasOwn(fields, 'expiresAt')) throw new HeraldError('bad_request', '"expiresAt" goes with "jti"; a user revocation takes "issuedBefore".');
    const user = validateUser(fields.user);
    // iat has one-second resolution: "now" as a fraction also refuses tokens issued earlier in this second.
    const issuedBefore = seconds('issuedBefore') ?? now / 1000;
    return { kind: 'revoke', user, issuedBefore, keepUntil: issuedBefore * 1000 + ttlSeconds * 1000 + skewMs };
  }
  if (Object.hasOwn(fields, 'issuedBefore')) throw new HeraldError('bad_request', '"issuedBefore" goes with "user"; a token revocation takes "expiresAt".');
  const jti = fields.jti;
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > JTI_MAX_LENGTH) {
    throw new HeraldError('bad_request', `"jti" must be a token's jti claim, 1-${JTI_MAX_LENGTH} characters.`);
  }
  const expiresAt = seconds('expiresAt');
  return { kind: 'revoke', jti, keepUntil: (expiresAt === undefined ? now + ttlSeconds * 1000 : expiresAt * 1000) + skewMs };
}

function isRevocationTime(v: unknown): v is number {
  return typeof v === 'number' && v >= 0 && v <= LATEST_REVOCATION_SECONDS;
}

/**
 * A command as it arrives from another replica, or undefined when it is not one herald sent.
 * Checked with the same rules as the HTTP bodies.
 */
export function commandFromBus(raw: unknown): Command | undefined {
  try {
    if (raw === null || typeof raw !== 'object') return undefined;
    const c = raw as Record<string, unknown>;
    const target = () => {
      const t = c.target as Record<string, unknown> | null;
      if (t === null || typeof t !== 'object') throw new HeraldError('bad_request');
      return targetOf(t);
    };
    switch (c.kind) {
      case 'disconnect':
        return { kind: 'disconnect', target: target(), ...(typeof c.reason === 'string' ? { reason: c.reason.slice(0, REASON_MAX_LENGTH) } : {}) };
      case 'subscribe':
      case 'unsubscribe':
        return parseMembership(c.kind, { ...target(), room: c.room });
      case 'revoke': {
        if (typeof c.keepUntil !== 'number') return undefined;
        if (typeof c.user === 'string' && isRevocationTime(c.issuedBefore)) {
          return { kind: 'revoke', user: validateUser(c.user), issuedBefore: c.issuedBefore, keepUntil: c.keepUntil };
        }
        return typeof c.jti === 'string' ? { kind: 'revoke', jti: c.jti, keepUntil: c.keepUntil } : undefined;
      }
      case 'list':
        return { kind: 'list', user: validateUser(c.user) };
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}
