import type { Socket } from 'socket.io';
import { PatternTable } from '../protocol/patterns.js';
import type { RoomName } from '../protocol/rooms.js';
import { USER_ROOM_PREFIX, userRoom, type Identity } from './identity.js';

/**
 * Who may subscribe to and publish into which room:
 * - `user:<id>` rooms: only user `<id>` subscribes (public patterns and claims never grant them);
 * - rooms matching PUBLIC_ROOMS: anyone connected;
 * - any other room: identities whose `rooms` claim matches.
 * Client publishing needs a matching `publish` claim, for any room.
 */
export class AccessPolicy {
  private readonly publicRooms: PatternTable<true>;

  constructor(publicPatterns: readonly string[]) {
    this.publicRooms = new PatternTable(publicPatterns.map((pattern) => ({ pattern, value: true as const })));
  }

  canSubscribe(identity: Identity, room: RoomName): boolean {
    if (room.startsWith(USER_ROOM_PREFIX)) return identity.userId !== undefined && room === userRoom(identity.userId);
    return Boolean(this.publicRooms.match(room) || identity.rooms.match(room));
  }

  canPublish(identity: Identity, room: RoomName): boolean {
    return Boolean(identity.publish.match(room));
  }
}

const GRANTED = Symbol.for('herald.granted');

/** Rooms the backend subscribed `socket` to (`POST /v1/subscribe`), which it keeps whatever its claims say. */
export function grantedRooms(socket: Socket): Set<RoomName> {
  const data = socket.data as Record<symbol, Set<RoomName> | undefined>;
  return (data[GRANTED] ??= new Set());
}
