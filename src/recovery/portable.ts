import type { Socket } from 'socket.io';
import { userRoom } from '../auth/identity.js';
import { isStreamId } from '../protocol/ids.js';
import { DISCONNECT_EVENT, type MessageId } from '../protocol/events.js';
import { isInternalRoom, validateRoom, type RoomName } from '../protocol/rooms.js';
import type { ErrorBody } from '../errors.js';
import { ownPosition, type Journal } from './journal.js';
import { lastShared } from './ring.js';

/**
 * Recovery offsets that need no stored session, for connections a replica closes while it cannot
 * reach Redis (a partition, a drain during one): it cannot save their sessions, so before closing
 * each one it sends one last packet, `herald:disconnect`, whose offset (the trailing string
 * socket.io-client keeps and sends back when it reconnects) says all a session would have:
 *
 *   `<epoch>.<seq>!<room>|<id>,<room>|<id>!<room>,<room>[!+][!@<ms>.<socket id>]`
 *
 * the ordinary offset this packet would have had; per history room, the id of the last entry this
 * connection was sent (empty when it cannot be told); the rooms without history; `!+` when rooms
 * were left out to stay within `PORTABLE_MAX_CHARS`; when the replica last heard every control
 * command (ms since the epoch: now, or when it lost Redis) and the connection's socket id. Room
 * names and ids cannot contain `!|,`.
 *
 * Control commands reach saved sessions; these were not saved, so a `disconnect`, `unsubscribe`
 * or `subscribe` for the user or the socket id is also kept as a mark (store.ts `CommandMark`),
 * and the restore applies the marks made since the time in the offset: a command the replica
 * could not hear is not undone by the restore. Revocations need no mark: the handshake checks
 * them.
 *
 * The replica the client reconnects to, finding no stored session, accepts it for no more than an
 * explicit `subscribe {room, since}` per room would give the same token: a fresh socket id, rooms
 * re-checked against the token's claims (rooms a backend granted are not carried: they cannot be
 * verified), history rooms replayed after their id. It needs no shared secret because it grants
 * nothing a client could not ask for anyway. `recovered: true` only for history rooms alone, each
 * with a known position, nothing left out.
 */
export interface PortableState {
  /** The ordinary offset (`<epoch>.<seq>`), for a stored session found after all. */
  readonly base: string;
  readonly history: Readonly<Record<RoomName, MessageId | null>>;
  readonly rooms: readonly RoomName[];
  /** Rooms were left out (the size bound, backend-granted rooms): not whole. */
  readonly partial: boolean;
  /** Until when (ms) the closing replica heard every control command, and the socket id; absent in offsets of earlier versions. */
  readonly heard?: { readonly until: number; readonly sid: string };
}

/** Longest portable offset herald writes or reads, in characters (it travels back in the handshake). */
export const PORTABLE_MAX_CHARS = 4096;
const BASE_MAX_CHARS = 40;

/** Socket.IO packet type of an event. */
const EVENT = 2;

export function encodePortable(state: PortableState): string {
  const history: string[] = [];
  const rooms: string[] = [];
  let partial = state.partial;
  const heard = state.heard ? `!@${state.heard.until}.${state.heard.sid}` : '';
  // The base, three separators, the partial mark and what was heard; then room by room while they fit.
  let length = state.base.length + 4 + heard.length;
  const add = (list: string[], item: string) => {
    if (length + item.length + 1 > PORTABLE_MAX_CHARS) return void (partial = true);
    list.push(item);
    length += item.length + 1;
  };
  for (const [room, id] of Object.entries(state.history)) add(history, `${room}|${id ?? ''}`);
  for (const room of state.rooms) add(rooms, room);
  return `${state.base}!${history.join(',')}!${rooms.join(',')}${partial ? '!+' : ''}${heard}`;
}

/** `@<ms>.<socket id>`: the part after the rooms (and `+`) saying what the closing replica heard. */
const HEARD = /^@(\d{1,15})\.([A-Za-z0-9_#/+=-]{1,64})$/;

/** The state in a portable offset; undefined for an ordinary offset, or one that breaks any rule. */
export function decodePortable(offset: string, maxRooms: number): PortableState | undefined {
  if (offset.length > PORTABLE_MAX_CHARS) return undefined;
  const parts = offset.split('!');
  if (parts.length < 3 || parts.length > 5) return undefined;
  const [base, historyPart, roomsPart, ...rest] = parts as [string, string, string, ...string[]];
  const partial = rest[0] === '+';
  if (partial) rest.shift();
  const heardMatch = rest.length === 1 ? HEARD.exec(rest[0]!) : undefined;
  if (rest.length > 0 && !heardMatch) return undefined;
  if (base.length === 0 || base.length > BASE_MAX_CHARS) return undefined;
  const history: Record<RoomName, MessageId | null> = {};
  const rooms: RoomName[] = [];
  const seen = new Set<RoomName>();
  const room = (name: string | undefined): RoomName | undefined => {
    if (name === undefined || seen.has(name) || !isRoom(name)) return undefined;
    seen.add(name);
    return name;
  };
  for (const item of historyPart === '' ? [] : historyPart.split(',')) {
    const [name, id, extra] = item.split('|');
    const r = room(name);
    if (r === undefined || extra !== undefined || (id !== '' && !isStreamId(id))) return undefined;
    history[r] = id === '' || id === undefined ? null : id;
  }
  for (const item of roomsPart === '' ? [] : roomsPart.split(',')) {
    const r = room(item);
    if (r === undefined) return undefined;
    rooms.push(r);
  }
  if (seen.size > maxRooms) return undefined;
  return { base, history, rooms, partial, ...(heardMatch ? { heard: { until: Number(heardMatch[1]), sid: heardMatch[2]! } } : {}) };
}

/** The part of an offset Socket.IO's own bookkeeping reads: the whole of an ordinary one. */
export function baseOf(offset: string): string {
  const bang = offset.indexOf('!');
  return bang === -1 ? offset : offset.slice(0, bang);
}

function isRoom(name: string): boolean {
  try {
    validateRoom(name);
  } catch {
    return false;
  }
  return !isInternalRoom(name);
}

/**
 * What `socket` has now, as a portable offset: per history room the last entry it was sent (the
 * journal's record, as a stored session would say), its other rooms. Read and sent in one go
 * (`closeWithOffset`), so nothing is delivered in between.
 */
export function portableStateOf(socket: Socket, journal: Journal, deps: { isHistoryRoom(room: RoomName): boolean; granted: ReadonlySet<RoomName>; user: string | null; heardUntil: number }): PortableState {
  const history: Record<RoomName, MessageId | null> = {};
  const rooms: RoomName[] = [];
  let partial = false;
  for (const room of socket.rooms) {
    if (room === socket.id || isInternalRoom(room) || (deps.user !== null && room === userRoom(deps.user))) continue;
    if (deps.granted.has(room)) partial = true;
    else if (deps.isHistoryRoom(room)) history[room] = positionNow(journal, socket.id, room);
    else rooms.push(room);
  }
  return { base: `${journal.epoch}.${journal.current}`, history, rooms, partial, heard: { until: deps.heardUntil, sid: socket.id } };
}

/** The last entry of `room` the journal says `socketId` was sent, up to the latest delivery; null when unknown. */
function positionNow(journal: Journal, socketId: string, room: RoomName): MessageId | null {
  const track = journal.snapshot(socketId, room);
  if (!track) return null;
  const seq = journal.current;
  if (track.liveFrom !== undefined && seq > track.liveFrom) {
    const ring = journal.ring(room);
    const shared = ring ? lastShared(ring, track.liveFrom, seq) : null;
    if (shared === undefined) return null;
    if (shared !== null) return shared;
  }
  return ownPosition(track, seq) ?? null;
}

/**
 * Sends `socket` its last packet, `herald:disconnect` with `body` and `offset` as the offset, and
 * closes its transport (socket.io-client then reconnects by itself). Written straight to the
 * connection, past the adapter, which would append an ordinary offset after it; the uWS transport
 * flushes its batched room publishes before any direct write, and a connection that is closing
 * takes no more packets, so this is the last one the client receives.
 */
export function closeWithOffset(socket: Socket, body: ErrorBody, offset: string | undefined): void {
  const packet = { type: EVENT, nsp: socket.nsp.name, data: offset === undefined ? [DISCONNECT_EVENT, body] : [DISCONNECT_EVENT, body, offset] };
  (socket as unknown as { client: { _packet(p: unknown, o: object): void } }).client._packet(packet, {});
  socket.conn.close();
}
