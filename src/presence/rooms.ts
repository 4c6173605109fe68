import type { Server } from 'socket.io';
import type { PresenceRule } from '../config/schema.js';
import { HeraldError } from '../errors.js';
import type { PatternTable } from '../protocol/patterns.js';
import { isDeltaRoom, type RoomName } from '../protocol/rooms.js';
import type { Member, PresenceBackend } from './types.js';
import { identityOf } from '../auth/identity.js';
import { NO_OTHER_MEMBERS, type OtherMembers } from '../protocol/members.js';

export const PRESENCE_PAGE_DEFAULT = 100;
export const PRESENCE_PAGE_MAX = 1000;

export interface PresencePage {
  room: RoomName;
  connections: number;
  /** Sorted user ids after `cursor`, at most `limit`. */
  users: string[];
  /** The `cursor` of the next page, when there is one. */
  next?: string;
}

/**
 * Presence for rooms matching PRESENCE_ROOMS. It follows the adapter's own join/leave events, so
 * subscribes, unsubscribes, user rooms and disconnects are all counted the same way; with
 * `events`, members get `herald:join` / `herald:leave` `{room, user, client}`.
 */
export class PresenceRooms {
  constructor(
    private readonly io: Server,
    private readonly backend: PresenceBackend,
    private readonly rules: PatternTable<PresenceRule>,
    /** Members that are not sockets (event streams): their users. */
    private readonly others: OtherMembers = NO_OTHER_MEMBERS,
  ) {
    const adapter = io.of('/').adapter;
    adapter.on('join-room', (room: RoomName, client: string) => this.changed('join', room, client));
    adapter.on('leave-room', (room: RoomName, client: string) => this.changed('leave', room, client));
  }

  has(room: RoomName): boolean {
    return this.rules.match(room) !== undefined;
  }

  async page(room: RoomName, cursor: string | undefined, limit: number): Promise<PresencePage> {
    if (!this.has(room)) throw new HeraldError('not_found', `Room "${room}" has no presence (see PRESENCE_ROOMS).`);
    if (!Number.isInteger(limit) || limit < 1 || limit > PRESENCE_PAGE_MAX) {
      throw new HeraldError('bad_request', `"limit" must be a whole number from 1 to ${PRESENCE_PAGE_MAX}.`);
    }
    let all;
    try {
      all = await this.backend.get(room);
    } catch (err) {
      throw new HeraldError('unavailable', 'Presence is unreachable (Redis is down). Retry.', { cause: err });
    }
    const after = cursor === undefined ? all.users : all.users.filter((u) => u > cursor);
    const users = after.slice(0, limit);
    return { room, connections: all.connections, users, ...(after.length > limit ? { next: users.at(-1)! } : {}) };
  }

  /** Rewrites this replica's members (after Redis comes back, it may have lost them). */
  resync(): Promise<void> {
    const members: [RoomName, Member][] = [];
    for (const [room, clients] of this.io.of('/').adapter.rooms) {
      if (isDeltaRoom(room) || !this.has(room)) continue;
      for (const client of clients) if (client !== room) members.push([room, this.member(client)]);
    }
    return this.backend.resync(members);
  }

  private changed(kind: 'join' | 'leave', room: RoomName, client: string): void {
    // Every socket sits in a room named by its own id; that is not a subscription.
    if (room === client || isDeltaRoom(room)) return;
    const rule = this.rules.match(room);
    if (!rule) return;
    const member = this.member(client);
    if (kind === 'join') void this.backend.add(room, member);
    else void this.backend.remove(room, client);
    if (rule.events) {
      this.io.to(room).except(client).emit(`herald:${kind}`, { room, user: member.user ?? null, client });
    }
  }

  private member(client: string): Member {
    const socket = this.io.of('/').sockets.get(client);
    return { client, user: socket ? identityOf(socket).userId : this.others.userOf(client) };
  }
}
