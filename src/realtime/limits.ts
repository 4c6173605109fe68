import type { Socket } from 'socket.io';
import { HeraldError } from '../errors.js';
import { TokenBucket } from '../limits/token-bucket.js';
import { reply } from './ack.js';
import { DISCONNECT_EVENT } from '../protocol/events.js';

export interface ClientLimits {
  rate: number;
  burst: number;
}

/** Answers one client event: `arg` is its first argument, `ack` its acknowledgement callback if any. */
export type EventHandler = (socket: Socket, arg: unknown, ack: unknown) => void;

/**
 * Guards and dispatches every incoming event of one connection: a token bucket (`rate_limited`
 * error ack when empty), an answer to unknown events, and a disconnect
 * (`herald:disconnect {code: "rate_limited"}`) for a client that keeps sending into an empty
 * bucket: `burst` refusals in a row. Admitted events go straight to their handler; herald
 * registers no per-event listeners on the socket (each would cost every idle connection memory).
 */
export function guardEvents(socket: Socket, limits: ClientLimits, handlers: ReadonlyMap<string, EventHandler>): void {
  const bucket = new TokenBucket(limits.rate, limits.burst, Date.now());
  let refusedInARow = 0;
  socket.use((packet) => {
    // Socket.IO appends the acknowledgement callback, when the client asked for one, after the arguments.
    const ack = packet.length > 1 && typeof packet[packet.length - 1] === 'function' ? packet[packet.length - 1] : undefined;
    const refuse = (err: HeraldError) => reply(ack, { ok: false, error: err.toBody() });
    if (!bucket.take(Date.now())) {
      refuse(new HeraldError('rate_limited'));
      if (++refusedInARow >= limits.burst) {
        socket.emit(DISCONNECT_EVENT, new HeraldError('rate_limited', 'Disconnected for sending too fast.').toBody());
        socket.disconnect(true);
      }
      return;
    }
    refusedInARow = 0;
    const handler = typeof packet[0] === 'string' ? handlers.get(packet[0]) : undefined;
    if (!handler) refuse(new HeraldError('unknown_event'));
    else handler(socket, packet[1] === ack ? undefined : packet[1], ack);
  });
}
