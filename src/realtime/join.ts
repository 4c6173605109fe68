import type { Socket } from 'socket.io';
import type { Bus } from '../cluster/bus.js';
import type { MessageId } from '../protocol/events.js';
import type { RoomName } from '../protocol/rooms.js';
import type { HistoryRooms, JoinResult, RoomBudget } from '../history/rooms.js';

/**
 * A subscribe after its checks (the claim check, the cap), as clients, the control API and
 * connection recovery make it: history rooms through `HistoryRooms.join` (from `since` when
 * given, else at the room's current position with `last` of its newest messages first), other
 * rooms by joining, with the shard channel live before this resolves (sharded mode; refused with
 * `unavailable`, and the room left, when it cannot be subscribed). A client's
 * join of a history room that has no stream yet is charged to its `budget` of new rooms.
 */
export async function joinRoom(
  socket: Socket,
  room: RoomName,
  deps: { history: HistoryRooms | undefined; bus: Bus },
  start: { since?: MessageId; last?: number; delta?: boolean; budget?: RoomBudget } = {},
): Promise<JoinResult & { history: boolean }> {
  const policy = deps.history?.policyFor(room);
  if (policy) return { history: true, ...(await deps.history!.join(socket, room, policy, start)) };
  const isNew = !socket.nsp.adapter.rooms.has(room);
  await socket.join(room);
  if (isNew) {
    try {
      await deps.bus.awaitRoom(room);
    } catch (err) {
      // Refused (`unavailable`, counted by the bus): the socket leaves the room it cannot hear.
      await socket.leave(room);
      throw err;
    }
  }
  return { history: false };
}
