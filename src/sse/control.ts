import type { Bus } from '../cluster/bus.js';
import type { ConnectionInfo, Target } from '../control/commands.js';
import type { OtherConnections } from '../control/local.js';
import type { HistoryRooms } from '../history/rooms.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { follow } from './follow.js';
import type { SseHub } from './hub.js';
import { SSE_TRANSPORT } from './routes.js';
import type { SseStream } from './stream.js';

/**
 * A `disconnect` of a stream ends it with this `retry:` (an hour): EventSource reconnects by
 * itself after any end, and "do not reconnect until your backend says so" has no other word in
 * SSE. A page should call `close()` on `herald:disconnect`. Revoked and expired tokens need no
 * such hint: the reconnect is refused (401), which stops EventSource for good.
 */
export const DISCONNECTED_RETRY_MS = 3_600_000;

/** The control API's commands (src/control/local.ts) on this replica's event streams. */
export function streamCommands(deps: { hub: SseHub; history: HistoryRooms | undefined; bus: Bus; metrics: Metrics; logger: Logger; replicaId: string }): OtherConnections {
  const { hub } = deps;
  const targeted = (target: Target): SseStream[] => {
    if ('client' in target) {
      const s = hub.get(target.client);
      return s ? [s] : [];
    }
    return hub.ofUser(target.user);
  };
  // The backend decided: no claim check, no cap on new history rooms (as for sockets).
  const unlimited = { take: () => true, giveBack: () => undefined };
  return {
    disconnect(target, body) {
      const streams = targeted(target);
      for (const s of streams) s.close(body, DISCONNECTED_RETRY_MS);
      return streams.length;
    },
    async subscribe(target, room) {
      const streams = targeted(target).filter((s) => !hub.roomsOf(s).includes(room));
      await Promise.all(streams.map((s) => follow(s, room, deps, { resuming: false, budget: unlimited })));
      return streams.length;
    },
    unsubscribe(target, room) {
      const streams = targeted(target).filter((s) => hub.roomsOf(s).includes(room));
      for (const s of streams) hub.leave(s, room);
      return streams.length;
    },
    revoke(command, body) {
      const streams = [...hub.all()].filter((s) =>
        'user' in command
          ? s.identity.userId === command.user && (s.identity.issuedAt === undefined || s.identity.issuedAt < command.issuedBefore)
          : s.identity.tokenId === command.jti,
      );
      for (const s of streams) s.close(body);
      return streams.length;
    },
    list(user) {
      return hub.ofUser(user).map((s): ConnectionInfo => ({ client: s.id, replica: deps.replicaId, transport: SSE_TRANSPORT, rooms: hub.roomsOf(s), connectedAt: s.openedAt }));
    },
  };
}
