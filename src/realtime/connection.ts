import type { Server, Socket } from 'socket.io';
import { HeraldError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { HELLO_EVENT, LAST_MAX, RESET_EVENT, type Hello, type MessageId, type Reset } from '../protocol/events.js';
import { isConnectionRoom, isDeltaRoom, roomFromClientArg, type RoomName } from '../protocol/rooms.js';
import { grantedRooms, type AccessPolicy } from '../auth/access.js';
import { identityOf, type Identity } from '../auth/identity.js';
import type { SubscribeProxy } from '../auth/proxy.js';
import type { Bus } from '../cluster/bus.js';
import { takePlan, type RecoveryPlan } from '../recovery/recovery.js';
import type { Journal } from '../recovery/journal.js';
import { joinRoom } from './join.js';
import { parsePublishRequest, type Publisher } from '../publish/service.js';
import type { HistoryRooms, RoomBudget } from '../history/rooms.js';
import { PRESENCE_PAGE_DEFAULT, type PresenceRooms } from '../presence/rooms.js';
import { answer } from './ack.js';
import { guardEvents, type ClientLimits, type EventHandler } from './limits.js';
import { releaseHandshake } from './handshake.js';
import type { LeaveRoom, Sessions } from './session.js';
import type { SlowConsumers } from './slow-consumers.js';

export interface RealtimeDeps {
  logger: Logger;
  metrics: Metrics;
  replicaId: string;
  /** Rooms with history and recovery; undefined when HISTORY_ROOMS is empty. */
  history: HistoryRooms | undefined;
  policy: AccessPolicy;
  publisher: Publisher;
  /** Rooms with presence; undefined when PRESENCE_ROOMS is empty. */
  presence: PresenceRooms | undefined;
  limits: ClientLimits & { maxSubscriptions: number };
  slow: SlowConsumers;
  bus: Bus;
  sessions: Sessions;
  /** With connection recovery on: what each connection was sent, kept until it is gone. */
  journal: Journal | undefined;
  /** SUBSCRIBE_PROXY_URL: asked about rooms the policy does not allow. */
  subscribeProxy?: SubscribeProxy;
  /** The allowance of new history rooms of this connection's client address (HISTORY_NEW_ROOMS_PER_IP). */
  newRooms(socket: Socket): RoomBudget;
}

/**
 * Client contract: `subscribe`/`unsubscribe` take a room name or `{room}` (`subscribe` also
 * `{room, since}`, `since` being the last `meta.id` the client saw, and `{room, last}`, the
 * number of the room's newest messages to receive first) and an ack that receives
 * `{ok: true, room}` or `{ok: false, error: {code, message}}`. The ack is sent after the join, so a
 * message published after the client saw `ok` is delivered to it.
 *
 * Per connection herald keeps one event guard (a closure, its token bucket) and one shared
 * `disconnecting` listener; the handlers below are shared by all connections. After connect it
 * also lets go of the upgrade request and most of the handshake (see `releaseHandshake`).
 */
export function registerRealtime(io: Server, deps: RealtimeDeps): void {
  const leave: LeaveRoom = async (socket, room) => {
    deps.history?.left(socket, room);
    deps.journal?.forget(socket.id, room);
    grantedRooms(socket).delete(room);
    await socket.leave(room);
  };
  const handlers = new Map<string, EventHandler>([
    ['subscribe', (socket, arg, ack) => answer(ack, () => subscribe(socket, arg, deps))],
    [
      'unsubscribe',
      (socket, arg, ack) =>
        answer(ack, async () => {
          const room = clientRoom(socket, arg);
          await leave(socket, room);
          return { room };
        }),
    ],
    // `presence` with a room or {room, cursor?, limit?}: only for rooms the client may subscribe to.
    [
      'presence',
      (socket, arg, ack) =>
        answer(ack, async () => {
          const room = roomFromClientArg(arg);
          // A member may see its room's presence, however it got in (a proxy's allow, the control API).
          if (!deps.policy.canSubscribe(identityOf(socket), room) && !socket.rooms.has(room)) throw new HeraldError('forbidden', `Not allowed to see "${room}".`);
          if (!deps.presence) throw new HeraldError('not_found', `Room "${room}" has no presence (see PRESENCE_ROOMS).`);
          const o = typeof arg === 'object' && arg !== null ? (arg as { cursor?: unknown; limit?: unknown }) : {};
          const cursor = typeof o.cursor === 'string' ? o.cursor : undefined;
          return deps.presence.page(room, cursor, o.limit === undefined ? PRESENCE_PAGE_DEFAULT : Number(o.limit));
        }),
    ],
    // Client publishing (a chat message from a browser): the same path as the HTTP API, allowed
    // only into rooms the token's `publish` claim matches.
    [
      'publish',
      (socket, arg, ack) =>
        answer(ack, async () => {
          const request = parsePublishRequest(arg);
          const identity = identityOf(socket);
          const refused = request.rooms.filter((r) => !deps.policy.canPublish(identity, r));
          if (refused.length > 0) throw new HeraldError('forbidden', `Not allowed to publish to ${refused.join(', ')}.`);
          return deps.publisher.publish(request, 'client');
        }),
    ],
    ['refresh', (socket, arg, ack) => deps.sessions.refresh(socket, arg, ack, leave)],
  ]);
  // One function for every socket: `this` is the socket that is going.
  const disconnecting = function (this: Socket) {
    for (const room of this.rooms) deps.history?.closing(this.id, room);
    deps.slow.closed(this);
    deps.sessions.closed(this);
    deps.metrics.connectionClosed();
  };
  // After `disconnecting`: Socket.IO saves the session for recovery in between, from the journal.
  const disconnect = function (this: Socket) {
    deps.journal?.forget(this.id);
  };
  const hello: Hello = { replica: deps.replicaId };
  io.on('connection', (socket) => {
    deps.metrics.connectionOpened(socket.conn.transport.name);
    deps.slow.attach(socket);
    deps.sessions.opened(socket);
    guardEvents(socket, deps.limits, handlers);
    socket.on('disconnecting', disconnecting);
    if (deps.journal) socket.on('disconnect', disconnect);
    releaseHandshake(socket);
    socket.emit(HELLO_EVENT, hello);
    const plan = takePlan(socket);
    if (plan) void resume(socket, plan, deps);
  });
}

async function subscribe(socket: Socket, arg: unknown, deps: RealtimeDeps): Promise<{ room: RoomName; recovered?: boolean; offset?: MessageId }> {
  const room = clientRoom(socket, arg);
  const identity = identityOf(socket);
  const askBackend = !deps.policy.canSubscribe(identity, room);
  if (askBackend && !deps.subscribeProxy?.covers(room)) throw new HeraldError('forbidden', `Not allowed to subscribe to "${room}".`);
  assertBelowLimit(socket, room, identity, deps);
  if (askBackend) {
    await deps.subscribeProxy!.authorize(socket.id, identity, room);
    // Gone while the backend decided: joining now would leave a room behind for a closed socket.
    if (!socket.connected) throw new HeraldError('unavailable', 'The connection closed while the backend decided.');
    // Other subscribes may have joined meanwhile.
    assertBelowLimit(socket, room, identity, deps);
    // Granted by the backend: kept on refresh and restored by connection recovery, like POST /v1/subscribe's.
    grantedRooms(socket).add(room);
  }
  const { since, last, delta } = startOf(arg);
  // `since` wins over `last`: with both, this is a recovery that cannot recover (below).
  if (last !== undefined && since === undefined && !deps.history?.policyFor(room)) {
    throw new HeraldError('not_found', `Room "${room}" keeps no history (see HISTORY_ROOMS), so there are no last messages to send; subscribe without "last".`);
  }
  if (delta && !deps.history?.policyFor(room)) {
    throw new HeraldError('not_found', `Room "${room}" keeps no history (see HISTORY_ROOMS), so it sends no deltas; subscribe without "delta".`);
  }
  // `since` is checked by `HistoryRooms.join`.
  const { history, ...joined } = await joinRoom(socket, room, deps, { since: since as MessageId | undefined, last, ...(delta ? { delta } : {}), budget: deps.newRooms(socket) });
  if (history) return { room, ...joined };
  // `since` on a room without history: nothing can be recovered.
  return since === undefined ? { room } : { room, recovered: false };
}

/** Throws `too_many_subscriptions` unless `socket` may join one more room (or is in `room` already). */
function assertBelowLimit(socket: Socket, room: RoomName, identity: Identity, deps: RealtimeDeps): void {
  if (socket.rooms.has(room)) return;
  let own = identity.userId === undefined ? 1 : 2; // its id room and its user room
  for (const r of socket.rooms) if (isDeltaRoom(r)) own++; // delivery rooms of its delta subscriptions
  if (socket.rooms.size - own >= deps.limits.maxSubscriptions) throw new HeraldError('too_many_subscriptions');
}

/**
 * A socket restored by connection recovery (src/recovery/recovery.ts): its rooms back, those its
 * claims still allow and those the backend granted it; in each history room, what it missed
 * after the last message its client had, in order, then live. A history room that no longer
 * holds that message gets `herald:reset` (as after a bus gap), and is joined at its current
 * position; one where that message cannot be told is not restored.
 */
async function resume(socket: Socket, plan: RecoveryPlan, deps: RealtimeDeps): Promise<void> {
  const identity = identityOf(socket);
  const granted = grantedRooms(socket);
  for (const room of plan.granted) granted.add(room);
  const allowed = (room: RoomName) => granted.has(room) || deps.policy.canSubscribe(identity, room);
  // A history room whose position cannot be told is left out: joined at its current position,
  // live messages would reach the socket ahead of the older ones a `subscribe {since}` replays.
  // The restore says `recovered: false`, and the client subscribes to it again.
  const rooms: [RoomName, MessageId | undefined][] = [
    ...plan.rooms.map((room): [RoomName, undefined] => [room, undefined]),
    ...Object.entries(plan.history).flatMap(([room, since]): [RoomName, MessageId][] => (since === null ? [] : [[room, since]])),
  ];
  await Promise.all(
    rooms
      .filter(([room]) => allowed(room))
      .map(async ([room, since]) => {
        try {
          if (since) deps.history?.restoring(socket, room);
          // A recovered socket does not get the room's `last` messages again.
          const budget = deps.newRooms(socket);
          const r = await joinRoom(socket, room, deps, since ? { since, budget } : { last: 0, budget });
          if (since && r.recovered === false && socket.connected) {
            const reset: Reset = { room, code: 'history_lost', ...(r.offset !== undefined ? { offset: r.offset } : {}) };
            socket.emit(RESET_EVENT, reset);
          }
        } catch (err) {
          deps.logger.warn({ client: socket.id, room, err: (err as Error).message }, 'could not restore a room of a recovered connection');
        }
      }),
  );
}

/**
 * Where a `subscribe {room, since?, last?, delta?}` starts: `since`, the last `meta.id` the client saw
 * (checked by `HistoryRooms.join`), or `last`, how many of the room's newest messages it wants
 * first (0 to LAST_MAX; 0 also turns off the room's `last=` option); `delta: "fossil"`: deltas
 * after its first whole message, in a room with the ` delta` option (src/history/delta.ts).
 */
function startOf(arg: unknown): { since: unknown; last: number | undefined; delta: boolean } {
  if (typeof arg !== 'object' || arg === null) return { since: undefined, last: undefined, delta: false };
  const { since, last, delta } = arg as { since?: unknown; last?: unknown; delta?: unknown };
  if (delta !== undefined && delta !== 'fossil') {
    throw new HeraldError('bad_request', '"delta" must be "fossil" (the only delta format herald sends), or left out for whole messages.');
  }
  if (last !== undefined && !(typeof last === 'number' && Number.isInteger(last) && last >= 0 && last <= LAST_MAX)) {
    throw new HeraldError('bad_request', `"last" must be a whole number from 0 to ${LAST_MAX}: how many of the room's newest messages to receive before live ones.`);
  }
  return { since, last, delta: delta === 'fossil' };
}

function clientRoom(socket: Socket, arg: unknown): RoomName {
  const room = roomFromClientArg(arg);
  // Connection rooms (its own or another's) are not the client's to join or leave.
  if (isConnectionRoom(room)) throw new HeraldError('forbidden', `"${room}" has the shape of a connection id (20 letters, digits, _ or -); such rooms are reserved.`);
  return room;
}
