import { createHash, timingSafeEqual } from 'node:crypto';
import type { PublishKey } from '../config/schema.js';
import { HeraldError } from '../errors.js';
import { PatternTable } from '../protocol/patterns.js';
import type { RoomName } from '../protocol/rooms.js';
import { isLoopback } from './publish-keys.js';

/** What a control caller may do. */
export interface ControlScope {
  /** Throws `forbidden` unless the caller may subscribe connections to (and out of) `room`. */
  assertRoom(room: RoomName): void;
  /** Throws `forbidden` unless the caller's key is not limited to rooms (disconnect, revoke, users). */
  assertUnlimited(): void;
}

export interface ControlAuthorizer {
  check(headers: Readonly<Record<string, string>>, remoteAddress: string): ControlScope;
}

const UNLIMITED: ControlScope = { assertRoom: () => {}, assertUnlimited: () => {} };

/**
 * Decides who may call the control API, the way `createPublishAuthorizer` does for publishing
 * (constant-time comparison of hashed keys, against every key; keys never logged), with two
 * differences:
 * - a publish key is refused with 403 `forbidden`, not taken for a wrong key, so a backend that
 *   sends its publish key learns it needs a control key;
 * - a key limited to rooms (`rooms=`) may subscribe and unsubscribe within them, and nothing
 *   else: disconnects, revocations and user listings act on users regardless of rooms.
 * Without control keys: loopback callers only, and nobody when `production` is set (a pod's
 * loopback is reachable through a port-forward or a sidecar).
 */
export function createControlAuthorizer(controlKeys: readonly PublishKey[], publishKeys: readonly PublishKey[], production: boolean): ControlAuthorizer {
  const entries = [
    ...controlKeys.map((k) => ({ digest: digest(k.key), scope: k.rooms ? limitedTo(k.rooms) : UNLIMITED })),
    ...publishKeys.map((k) => ({ digest: digest(k.key), scope: undefined })),
  ];
  return {
    check(headers, remoteAddress) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
      let found: { scope: ControlScope | undefined } | undefined;
      if (match?.[1]) {
        const given = digest(match[1]);
        // Compare against every key so timing does not reveal which one matched.
        for (const e of entries) if (timingSafeEqual(given, e.digest)) found ??= e;
      }
      if (found && !found.scope) throw new HeraldError('forbidden', 'This is a publish key; the control API takes a key from CONTROL_KEYS.');
      if (found?.scope) return found.scope;
      if (controlKeys.length > 0) throw new HeraldError('unauthorized', 'Send a control key (CONTROL_KEYS) as "Authorization: Bearer <key>".');
      if (production) throw new HeraldError('forbidden', 'No CONTROL_KEYS are configured, so the control API is off (NODE_ENV=production).');
      if (!isLoopback(remoteAddress)) throw new HeraldError('forbidden', 'No CONTROL_KEYS are configured, so only loopback callers may use the control API.');
      return UNLIMITED;
    },
  };
}

function limitedTo(patterns: readonly string[]): ControlScope {
  const rooms = new PatternTable(patterns.map((pattern) => ({ pattern, value: true as const })));
  return {
    assertRoom(room) {
      if (!rooms.match(room)) throw new HeraldError('forbidden', `This key may not use room ${room}.`);
    },
    assertUnlimited() {
      throw new HeraldError('forbidden', 'This key is limited to rooms; it may only subscribe and unsubscribe connections there.');
    },
  };
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}
