import type { Bus } from '../cluster/bus.js';
import { HeraldError, toHeraldError } from '../errors.js';
import type { HistoryRooms, HistoryRoomPolicy, RoomBudget } from '../history/rooms.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { LAST_MAX, type MessageId } from '../protocol/events.js';
import type { RoomName } from '../protocol/rooms.js';
import type { SseHub } from './hub.js';
import type { SseStream } from './stream.js';

/** Entries fetched per history read while replaying (as for Socket.IO, src/history/rooms.ts). */
const REPLAY_PAGE = 1000;

export interface FollowDeps {
  hub: SseHub;
  history: HistoryRooms | undefined;
  bus: Bus;
  metrics: Metrics;
  logger: Logger;
}

/** Where a room of a stream starts: `since` (its position from `Last-Event-ID` or `since`), else the newest `last`. */
export interface FollowStart {
  since?: MessageId;
  last?: number;
  /** The request resumed (or named `since`): rooms that cannot recover say `recovered: false`. */
  resuming: boolean;
  /** The address's allowance of new history rooms (HISTORY_NEW_ROOMS_PER_IP). */
  budget: RoomBudget;
}

const unreachableLog = throttle(10_000);

/**
 * Puts `stream` in `room` and tells it so with `herald:subscribed`, the body a Socket.IO client's
 * subscribe ack would have: `{ok: true, room, offset?, recovered?}` or `{ok: false, room, error}`.
 *
 * A history room works as `HistoryRooms.join` does for a socket: the stream is a member first
 * (live entries are held), the room's channel is heard, then the history after `since` (or the
 * newest `last`, or nothing: the room's current position) is sent in order at the pace the
 * reader takes it, then what was held, then live entries; nothing twice (entries at or below
 * the stream's position are dropped), nothing missed. A `since` the history no longer holds
 * gives `recovered: false`, and the room continues from its current position. Without a
 * reachable history the stream gets live entries only, and no `offset`.
 */
export async function follow(stream: SseStream, room: RoomName, deps: FollowDeps, start: FollowStart): Promise<void> {
  // Gone before it was in: nothing to join (a channel subscribed now would outlive it).
  if (stream.closed) return;
  const policy = deps.history?.policyFor(room);
  try {
    // A history room the stream was opened with has its position in the `id:`; one added later
    // (the control API's subscribe) is followed live, like a room without history.
    const answer = policy && stream.isHistoryRoom(room) ? await followHistory(stream, room, policy, deps, start) : await followRoom(stream, room, deps, start);
    if (!stream.closed) stream.subscribed(room, { ok: true, room, ...answer });
  } catch (err) {
    if (stream.closed) return;
    deps.hub.leave(stream, room);
    stream.subscribed(room, { ok: false, room, error: toHeraldError(err).toBody() });
  }
}

async function followRoom(stream: SseStream, room: RoomName, deps: FollowDeps, start: FollowStart): Promise<{ recovered?: boolean }> {
  const adapter = deps.hub.adapterRooms();
  const isNew = !adapter.has(room);
  deps.hub.join(stream, room);
  if (deps.history?.policyFor(room)) await watch(room, deps);
  else if (isNew) await deps.bus.awaitRoom(room);
  // A room without history cannot resume: what it had while the stream was away is gone.
  return start.resuming ? { recovered: false } : {};
}

async function followHistory(stream: SseStream, room: RoomName, policy: HistoryRoomPolicy, deps: FollowDeps, start: FollowStart): Promise<{ offset?: MessageId; recovered?: boolean }> {
  const history = deps.history!;
  deps.hub.join(stream, room);
  await watch(room, deps);
  const since = start.since;
  let mark: MessageId | undefined;
  let recovered: boolean | undefined;
  try {
    if (since !== undefined) {
      const r = await replay(stream, room, since, history);
      recovered = r.recovered;
      if (recovered) mark = r.mark;
    } else if ((start.last ?? policy.last ?? 0) > 0) {
      const entries = await history.backend.latest(room, Math.min(start.last ?? policy.last ?? 0, LAST_MAX));
      for (const e of entries) stream.replayed(room, e);
      const newest = entries.at(-1)?.id;
      if (newest !== undefined) mark = (await replay(stream, room, newest, history)).mark;
    }
    if (mark === undefined && !stream.closed) {
      const r = await replay(stream, room, await position(room, policy, history, deps.metrics, start.budget), history);
      if (r.recovered) mark = r.mark;
    }
  } catch (err) {
    if (err instanceof HeraldError) throw err;
    mark = undefined;
    if (unreachableLog.due()) deps.logger.warn({ room, client: stream.id, err: (err as Error).message }, 'history unreachable on an event stream; following live messages only');
  }
  stream.goLive(room, mark);
  return { ...(mark !== undefined ? { offset: mark } : {}), ...(start.resuming ? { recovered: recovered === true } : {}) };
}

/** Sends everything after `since` at the reader's pace; the last id sent, and whether the history still held `since`. */
async function replay(stream: SseStream, room: RoomName, since: MessageId, history: HistoryRooms): Promise<{ mark: MessageId; recovered: boolean }> {
  let mark = since;
  for (;;) {
    stream.readStarted(room);
    const page = await history.backend.read(room, mark, REPLAY_PAGE);
    if (!page.recovered) return { mark, recovered: false };
    for (const e of page.entries) {
      // A replay larger than the bound would close the reader it is for, again at every reconnect.
      if (stream.backlogged) await new Promise<void>((resolve) => stream.whenDrained(resolve));
      if (stream.closed) return { mark, recovered: true };
      stream.replayed(room, e);
      mark = e.id;
    }
    if (page.entries.length < REPLAY_PAGE && !stream.lettingGo(room)) return { mark, recovered: true };
  }
}

/** The room's current position, creating its stream within the address's budget (as `HistoryRooms` does). */
async function position(room: RoomName, policy: HistoryRoomPolicy, history: HistoryRooms, metrics: Metrics, budget: RoomBudget): Promise<MessageId> {
  const mayCreate = budget.take();
  let at: { id: MessageId; created: boolean } | undefined;
  try {
    at = await history.backend.position(room, policy, mayCreate);
  } finally {
    if (mayCreate && at?.created !== true) budget.giveBack();
  }
  if (!at) {
    metrics.historyRoomCreation('refused');
    throw new HeraldError('too_many_new_rooms');
  }
  if (at.created) metrics.historyRoomCreation('created');
  return at.id;
}

/** Makes this replica hear a history room's entries (sharded Redis subscribes per room); refused with `unavailable`. */
async function watch(room: RoomName, deps: FollowDeps): Promise<void> {
  try {
    await deps.history!.backend.watch(room);
  } catch (err) {
    deps.metrics.roomSubscribeFailed('history');
    throw new HeraldError('unavailable', 'This replica could not subscribe to the room\'s channel; reconnect.', { cause: err });
  }
}
