import type { Server, Socket } from 'socket.io';
import { HeraldError, toHeraldError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { HELLO_EVENT, type Hello, type SubscribeAck } from '../protocol/events.js';
import { roomFromClientArg, type RoomName } from '../protocol/rooms.js';

export interface RealtimeDeps {
  logger: Logger;
  metrics: Metrics;
  replicaId: string;
}

/**
 * Client contract: `subscribe`/`unsubscribe` take a room name or `{room}` and an ack that receives
 * `{ok: true, room}` or `{ok: false, error: {code, message}}`. The ack is sent after the join, so a
 * message published after the client saw `ok` is delivered to it.
 */
export function registerRealtime(io: Server, deps: RealtimeDeps): void {
  io.on('connection', (socket) => {
    deps.metrics.connectionOpened();
    const hello: Hello = { replica: deps.replicaId };
    socket.emit(HELLO_EVENT, hello);
    socket.on('disconnect', () => deps.metrics.connectionClosed());
    socket.on('subscribe', (arg: unknown, ack: unknown) =>
      answer(ack, () => {
        const room = clientRoom(socket, arg);
        void socket.join(room);
        return room;
      }),
    );
    socket.on('unsubscribe', (arg: unknown, ack: unknown) =>
      answer(ack, () => {
        const room = clientRoom(socket, arg);
        void socket.leave(room);
        return room;
      }),
    );
  });
}

function clientRoom(socket: Socket, arg: unknown): RoomName {
  const room = roomFromClientArg(arg);
  // Socket.IO puts each socket in a room named by its id; that one is not the client's to leave or join.
  if (room === socket.id) throw new HeraldError('forbidden', 'A socket may not join or leave the room named by its own id.');
  return room;
}

function answer(ack: unknown, work: () => RoomName): void {
  let reply: SubscribeAck;
  try {
    reply = { ok: true, room: work() };
  } catch (err) {
    reply = { ok: false, error: toHeraldError(err).toBody() };
  }
  if (typeof ack === 'function') (ack as (r: SubscribeAck) => void)(reply);
}
