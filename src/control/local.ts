import type { Server, Socket } from 'socket.io';
import { userRoom } from '../auth/identity.js';
import type { MemoryRevocations } from '../auth/revocations.js';
import type { Bus } from '../cluster/bus.js';
import { HeraldError, type ErrorBody } from '../errors.js';
import { DISCONNECT_EVENT } from '../protocol/events.js';
import { isDeltaRoom, type RoomName } from '../protocol/rooms.js';
import type { HistoryRooms } from '../history/rooms.js';
import { joinRoom } from '../realtime/join.js';
import { grantedRooms } from '../auth/access.js';
import { identityOf } from '../auth/identity.js';
import type { Command, ConnectionInfo, Report, RevokeCommand, Target } from './commands.js';

export interface LocalDeps {
  io: Server;
  replicaId: string;
  history: HistoryRooms | undefined;
  bus: Bus;
  /** This replica's copy of the revocations it has heard of (see `refusingRevoked`). */
  known: MemoryRevocations;
  /** The transport a connection uses now (it changes on upgrade). */
  transportOf(socket: Socket): string;
  /** This replica's connections that are not sockets (event streams, src/sse/control.ts). */
  others?: OtherConnections;
}

/**
 * What the commands do to connections that are not Socket.IO sockets (Server-Sent Events
 * streams): each returns how many it matched, like the socket part of `applyLocally`.
 */
export interface OtherConnections {
  disconnect(target: Target, body: ErrorBody): number;
  subscribe(target: Target, room: RoomName): Promise<number>;
  unsubscribe(target: Target, room: RoomName): number;
  revoke(command: RevokeCommand, body: ErrorBody): number;
  list(user: string): ConnectionInfo[];
}

/**
 * Applies a command to this replica's own connections and reports how many it matched. A
 * server-side subscribe goes through the same joins as a client's (history rooms through
 * `HistoryRooms.join`, so the connection starts at the room's current position; the shard
 * channel is live before the count is reported), without the claim check: the backend decided.
 * Presence follows the adapter's join and leave events, so it counts these like any other.
 */
export async function applyLocally(command: Command, deps: LocalDeps): Promise<Report> {
  const report = (count: number, connections?: ConnectionInfo[]): Report => ({ replica: deps.replicaId, count, ...(connections ? { connections } : {}) });
  switch (command.kind) {
    case 'disconnect': {
      const sockets = targeted(deps.io, command.target);
      const body = { ...new HeraldError('disconnected').toBody(), ...(command.reason !== undefined ? { reason: command.reason } : {}) };
      for (const s of sockets) closeWith(s, body);
      return report(sockets.length + (deps.others?.disconnect(command.target, body) ?? 0));
    }
    case 'subscribe': {
      const sockets = targeted(deps.io, command.target);
      const [streams] = await Promise.all([deps.others?.subscribe(command.target, command.room) ?? 0, ...sockets.map((s) => join(s, command.room, deps))]);
      return report(sockets.length + streams);
    }
    case 'unsubscribe': {
      // A user's own room stays: every command by user finds its connections through it.
      const sockets = targeted(deps.io, command.target).filter((s) => command.room !== ownUserRoom(s));
      await Promise.all(
        sockets.map(async (s) => {
          deps.history?.left(s, command.room);
          grantedRooms(s).delete(command.room);
          await s.leave(command.room);
        }),
      );
      return report(sockets.length + (deps.others?.unsubscribe(command.target, command.room) ?? 0));
    }
    case 'revoke': {
      // Recorded before the sweep, in the same turn: a connection that completes its handshake
      // after this is refused by the verifier; one that completed before is in the sweep.
      deps.known.record(command);
      const sockets =
        'user' in command
          ? targeted(deps.io, { user: command.user }).filter((s) => {
              const issuedAt = identityOf(s).issuedAt;
              return issuedAt === undefined || issuedAt < command.issuedBefore;
            })
          : [...deps.io.of('/').sockets.values()].filter((s) => identityOf(s).tokenId === command.jti);
      const body = new HeraldError('token_revoked').toBody();
      for (const s of sockets) closeWith(s, body);
      return report(sockets.length + (deps.others?.revoke(command, body) ?? 0));
    }
    case 'list': {
      const connections = targeted(deps.io, { user: command.user }).map((s) => ({
        client: s.id,
        replica: deps.replicaId,
        transport: deps.transportOf(s),
        rooms: [...s.rooms].filter((r) => r !== s.id && !isDeltaRoom(r)),
        connectedAt: s.handshake.issued,
      }));
      connections.push(...(deps.others?.list(command.user) ?? []));
      return report(connections.length, connections);
    }
  }
}

/** The local connections a target names, copied (disconnects change the room while we walk it). */
function targeted(io: Server, target: Target): Socket[] {
  const nsp = io.of('/');
  if ('client' in target) {
    const s = nsp.sockets.get(target.client);
    return s ? [s] : [];
  }
  const ids = nsp.adapter.rooms.get(userRoom(target.user));
  if (!ids) return [];
  return [...ids].flatMap((id) => {
    const s = nsp.sockets.get(id);
    return s ? [s] : [];
  });
}

function ownUserRoom(socket: Socket): RoomName | undefined {
  const user = identityOf(socket).userId;
  return user === undefined ? undefined : userRoom(user);
}

/** `herald:disconnect` with `body`, then closed by the server (socket.io-client does not reconnect on its own). */
function closeWith(socket: Socket, body: object): void {
  socket.emit(DISCONNECT_EVENT, body);
  socket.disconnect(true);
}

/** A client's subscribe without the claim check and the subscription cap; kept across recovery. */
async function join(socket: Socket, room: RoomName, deps: LocalDeps): Promise<void> {
  if (socket.rooms.has(room)) return;
  grantedRooms(socket).add(room);
  await joinRoom(socket, room, deps);
}
