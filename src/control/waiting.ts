import { userRoom } from '../auth/identity.js';
import type { HistoryRooms } from '../history/rooms.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { MessageId } from '../protocol/events.js';
import type { Recovery } from '../recovery/recovery.js';
import type { Amend, CommandMark, StoredSession, WaitingKey } from '../recovery/store.js';
import type { Command } from './commands.js';

/** What a command does to the sessions waiting for their client (saved by connection recovery). */
export interface WaitingChange {
  key: WaitingKey;
  /** Whether a session being saved is one the command concerns. */
  match(session: StoredSession): boolean;
  amend: Amend;
}

/**
 * Control commands reach sessions that wait for their client to come back as they reach open
 * connections, so that a restore never undoes them:
 * - `disconnect` drops them, and `revoke` those holding a revoked token (the restore then
 *   starts afresh);
 * - `unsubscribe` takes the room out of them;
 * - `subscribe` puts the room in them, as a room the backend granted. A history room starts at
 *   its position when the command ran (read once, `position`), so the restored connection gets
 *   what was published since, as an open connection would have; a room without history (or whose
 *   position could not be read) is joined on restore, and that restore reports
 *   `recovered: false`, since its messages in between are lost.
 * Undefined for `list`, which leaves them alone.
 */
export function waitingChange(command: Command, position?: MessageId): WaitingChange | undefined {
  switch (command.kind) {
    case 'disconnect':
      return { key: command.target, match: matcher(command.target), amend: () => null };
    case 'revoke':
      if ('jti' in command) return { key: { jti: command.jti }, match: (s) => s.tokenId === command.jti, amend: () => null };
      return {
        key: { user: command.user },
        match: (s) => s.user === command.user,
        amend: (s) => (s.issuedAt === undefined || s.issuedAt < command.issuedBefore ? null : undefined),
      };
    case 'unsubscribe': {
      const { room } = command;
      return {
        key: command.target,
        match: matcher(command.target),
        // A user's own room is never left.
        amend: (s) => {
          if (s.user !== null && room === userRoom(s.user)) return undefined;
          const history = { ...s.history };
          delete history[room];
          return { ...s, rooms: s.rooms.filter((r) => r !== room), granted: s.granted.filter((r) => r !== room), history };
        },
      };
    }
    case 'subscribe': {
      const { room } = command;
      return {
        key: command.target,
        match: matcher(command.target),
        amend: (s) => {
          if (s.user !== null && room === userRoom(s.user)) return s;
          const granted = s.granted.includes(room) ? s.granted : [...s.granted, room];
          if (s.rooms.includes(room) || Object.hasOwn(s.history, room)) return { ...s, granted };
          if (position !== undefined) return { ...s, granted, history: { ...s.history, [room]: { base: position, sends: [] } } };
          return { ...s, granted, rooms: [...s.rooms, room] };
        },
      };
    }
    case 'list':
      return undefined;
  }
}

/**
 * What a command leaves for clients that come back with a portable offset, whose sessions were
 * never saved (src/recovery/portable.ts); undefined for `revoke` (the handshake checks
 * revocations) and `list`.
 */
export function commandMark(command: Command): { key: WaitingKey; mark: CommandMark } | undefined {
  switch (command.kind) {
    case 'disconnect':
      return { key: command.target, mark: { kind: 'disconnect' } };
    case 'unsubscribe':
    case 'subscribe':
      return { key: command.target, mark: { kind: command.kind, room: command.room } };
    default:
      return undefined;
  }
}

function matcher(key: WaitingKey): (s: StoredSession) => boolean {
  if ('user' in key) return (s) => s.user === key.user;
  if ('client' in key) return (s) => s.sid === key.client;
  return (s) => s.tokenId === key.jti;
}

/**
 * Applies a command to the waiting sessions, for the replica the command was sent to (it runs
 * this once before the command goes to the replicas and once after they reported: see
 * `ClusterCommands`); adds the hash of each session changed to `changed`. At the first run it
 * also leaves the command's mark (`commandMark`), timed before any replica heard it.
 */
export function applyToWaiting(recovery: Recovery, history: HistoryRooms | undefined, logger: Logger) {
  // Both runs of one subscribe start the room where it was when the command ran.
  const positions = new WeakMap<Command, Promise<MessageId | undefined>>();
  const positionFor = (command: Command): Promise<MessageId | undefined> => {
    const policy = history && command.kind === 'subscribe' ? history.policyFor(command.room) : undefined;
    if (!history || !policy || command.kind !== 'subscribe') return Promise.resolve(undefined);
    let p = positions.get(command);
    // Unreadable: the room is restored without history (see `waitingChange`).
    if (!p) {
      const room = command.room;
      // A backend's command is not charged to any client address's new-room budget.
      p = history.backend.position(room, policy).then((at) => at?.id, (err: Error) => {
        logger.warn({ room, err: err.message }, 'history unreachable: waiting sessions get the room without its messages since the subscribe');
        return undefined;
      });
      positions.set(command, p);
    }
    return p;
  };
  // Marked once per command, at its first run: before it goes to the other replicas.
  const marked = new WeakSet<Command>();
  const markLog = throttle(10_000);
  return async (command: Command, changed: Set<string>): Promise<void> => {
    const mark = marked.has(command) ? undefined : commandMark(command);
    if (mark) {
      marked.add(command);
      // Not kept (Redis refusing writes: out of memory): the command still reaches the open
      // connections and the waiting sessions; only a client back from a partition misses it.
      await recovery.markCommand(mark.key, mark.mark, Date.now()).catch((err: Error) => {
        if (markLog.due()) logger.warn({ command: command.kind, err: err.message }, 'could not keep a control command for clients that come back with a portable offset; it reaches open connections and waiting sessions');
      });
    }
    const change = waitingChange(command, await positionFor(command));
    if (change) await recovery.amendWaiting(change.key, change.amend, changed);
  };
}
