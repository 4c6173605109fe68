import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type { PublishKey } from '../config/schema.js';
import { HeraldError } from '../errors.js';
import { PatternTable } from '../protocol/patterns.js';
import { validateRoom, type RoomName } from '../protocol/rooms.js';

/** What an authenticated API caller may touch. */
export interface PublishScope {
  /** Throws `forbidden` unless this caller may publish to / read every one of `rooms`. */
  assertRooms(rooms: readonly RoomName[]): void;
}

/**
 * Decides who may call the publish and history APIs. With keys: a matching
 * `Authorization: Bearer <key>`, compared in constant time (both sides hashed first, so lengths
 * leak nothing), limited to the key's rooms if it has any. Without keys: loopback callers only.
 * Keys are never logged.
 */
export interface PublishAuthorizer {
  check(headers: Readonly<Record<string, string>>, remoteAddress: string): PublishScope;
}

const EVERY_ROOM: PublishScope = { assertRooms: () => {} };

export function createPublishAuthorizer(keys: readonly PublishKey[]): PublishAuthorizer {
  const entries = keys.map((k) => ({
    digest: digest(k.key),
    scope: k.rooms ? scopeOf(new PatternTable(k.rooms.map((pattern) => ({ pattern, value: true as const })))) : EVERY_ROOM,
  }));
  return {
    check(headers, remoteAddress) {
      if (entries.length === 0) {
        if (!isLoopback(remoteAddress)) {
          throw new HeraldError('forbidden', 'No PUBLISH_KEYS are configured, so only loopback callers may publish.');
        }
        return EVERY_ROOM;
      }
      const match = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
      if (!match?.[1]) throw new HeraldError('unauthorized');
      const given = digest(match[1]);
      // Compare against every key so timing does not reveal which one matched.
      let found: PublishScope | undefined;
      for (const e of entries) if (timingSafeEqual(given, e.digest)) found ??= e.scope;
      if (!found) throw new HeraldError('unauthorized');
      return found;
    },
  };
}

function scopeOf(rooms: PatternTable<true>): PublishScope {
  return {
    assertRooms(list) {
      const outside = list.filter((r) => !rooms.match(r));
      if (outside.length > 0) throw new HeraldError('forbidden', `This key may not use room(s): ${outside.join(', ')}.`);
    },
  };
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * True for 127.0.0.0/8 and ::1 in any textual form, including the IPv4-mapped, zero-padded
 * `0000:...:ffff:7f00:0001` that uWebSockets.js reports.
 */
export function isLoopback(address: string): boolean {
  let known = loopbackSeen.get(address);
  if (known === undefined) {
    const family = isIP(address);
    known = family !== 0 && LOOPBACK.check(address, family === 4 ? 'ipv4' : 'ipv6');
    // Callers are few (publishers, probes); a BlockList check per request showed in profiles.
    if (loopbackSeen.size >= 1024) loopbackSeen.clear();
    loopbackSeen.set(address, known);
  }
  return known;
}

const loopbackSeen = new Map<string, boolean>();

/**
 * The common start of the per-room backend APIs (history, presence): a valid key for this room,
 * or loopback without keys. Returns the validated room name.
 */
export function authorizedRoom(auth: PublishAuthorizer, req: { headers: Readonly<Record<string, string>>; remoteAddress: string; params: Readonly<Record<string, string>> }): RoomName {
  const scope = auth.check(req.headers, req.remoteAddress);
  const room = validateRoom(req.params.room);
  scope.assertRooms([room]);
  return room;
}
