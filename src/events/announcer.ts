import type { Server, Socket } from 'socket.io';
import type { PatternTable } from '../protocol/patterns.js';
import { isDeltaRoom, isInternalRoom, type RoomName } from '../protocol/rooms.js';
import { identityOf } from '../auth/identity.js';
import type { Subject, Transitions } from './transitions.js';
import type { WebhookType } from '../protocol/webhooks.js';
import type { OtherMembers } from '../protocol/members.js';

export interface AnnouncerDeps {
  io: Server;
  replicaId: string;
  /** Types WEBHOOK_EVENTS selected. */
  types: ReadonlySet<WebhookType>;
  /** PRESENCE_ROOMS: the rooms whose users are announced. */
  presenceRooms: PatternTable<unknown>;
  send(type: WebhookType, data: Record<string, unknown>): void;
  /** Connections that are not sockets (event streams): announced too, their users counted. */
  others?: OtherMembers;
}

/**
 * Turns what happens on this replica into webhooks:
 * - every connection, opened and closed, as it happens here;
 * - rooms and presence users through `Transitions`, fed with this replica's own transitions:
 *   a room's first and last local member (the adapter's create-room / delete-room), and a user's
 *   first and last local connection in a presence room. Anonymous connections are not users.
 * Connection-id rooms are not rooms a backend knows of; `user:<id>` rooms are, and their
 * `room.vacated` says that user has no connection left anywhere.
 */
export class Announcer {
  /** Local connections per `<room> <user>` in presence rooms. */
  private readonly users = new Map<string, number>();
  private transitions: Transitions | undefined;

  constructor(private readonly deps: AnnouncerDeps) {}

  /** Starts listening; `transitions` then receives this replica's transitions. */
  start(transitions: Transitions): void {
    this.transitions = transitions;
    const { io, types } = this.deps;
    const adapter = io.of('/').adapter;
    if (types.has('connection.opened') || types.has('connection.closed')) {
      const replica = this.deps.replicaId;
      const closed = (socket: Socket, reason: string) =>
        this.deps.send('connection.closed', { user: identityOf(socket).userId ?? null, client: socket.id, replica, reason, transport: socket.conn.transport.name });
      io.on('connection', (socket) => {
        if (types.has('connection.opened')) this.deps.send('connection.opened', { user: identityOf(socket).userId ?? null, client: socket.id, replica, transport: socket.conn.transport.name });
        if (types.has('connection.closed')) socket.once('disconnect', (reason: string) => closed(socket, reason));
      });
      const others = this.deps.others;
      if (types.has('connection.opened')) others?.onOpened((c) => this.deps.send('connection.opened', { user: c.user ?? null, client: c.client, replica, transport: c.transport }));
      if (types.has('connection.closed')) others?.onClosed((c) => this.deps.send('connection.closed', { user: c.user ?? null, client: c.client, replica, reason: c.reason, transport: c.transport }));
    }
    if (types.has('room.occupied') || types.has('room.vacated')) {
      adapter.on('create-room', (room: RoomName) => !isInternalRoom(room) && transitions.hold({ room }));
      adapter.on('delete-room', (room: RoomName) => !isInternalRoom(room) && transitions.release({ room }));
    }
    if (types.has('presence.joined') || types.has('presence.left')) {
      adapter.on('join-room', (room: RoomName, client: string) => this.presence(room, client, +1));
      adapter.on('leave-room', (room: RoomName, client: string) => this.presence(room, client, -1));
    }
  }

  /** The subjects this replica holds now (for a resync after Redis comes back). */
  held(): Subject[] {
    const held: Subject[] = [];
    if (this.deps.types.has('room.occupied') || this.deps.types.has('room.vacated')) {
      for (const room of this.deps.io.of('/').adapter.rooms.keys()) if (!isInternalRoom(room)) held.push({ room });
    }
    for (const key of this.users.keys()) {
      const [room, user] = key.split(' ');
      held.push({ room: room!, user: user! });
    }
    return held;
  }

  /** A transition the cluster agreed on: announce it. */
  announced(kind: 'start' | 'end', subject: Subject): void {
    const type: WebhookType =
      subject.user === undefined ? (kind === 'start' ? 'room.occupied' : 'room.vacated') : kind === 'start' ? 'presence.joined' : 'presence.left';
    if (!this.deps.types.has(type)) return;
    this.deps.send(type, subject.user === undefined ? { room: subject.room } : { room: subject.room, user: subject.user });
  }

  private presence(room: RoomName, client: string, delta: 1 | -1): void {
    if (room === client || isDeltaRoom(room) || !this.deps.presenceRooms.match(room)) return;
    // The socket is still in the namespace while it leaves its rooms on disconnect.
    const socket = this.deps.io.of('/').sockets.get(client);
    const user = socket ? identityOf(socket).userId : this.deps.others?.userOf(client);
    if (user === undefined) return;
    const key = `${room} ${user}`;
    const n = (this.users.get(key) ?? 0) + delta;
    if (n > 0) this.users.set(key, n);
    else this.users.delete(key);
    if (n === 1 && delta === 1) this.transitions?.hold({ room, user });
    if (n === 0) this.transitions?.release({ room, user });
  }
}
