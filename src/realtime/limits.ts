import type { Socket } from 'socket.io';
import { HeraldError } from '../errors.js';
import { TokenBucket } from '../limits/token-bucket.js';
import { DISCONNECT_EVENT } from './session.js';

/** Events herald answers; anything else gets `unknown_event`. */
export const CLIENT_EVENTS = new Set(['subscribe', 'unsubscribe', 'publish', 'presence', 'refresh']);

export interface ClientLimits {
  rate: number;
  burst: number;
}

/**
 * Guards every incoming event of one connection: a token bucket (`rate_limited` error ack when
 * empty), an answer to unknown events, and a disconnect (`herald:disconnect {code: "rate_limited"}`)
 * for a client that keeps sending into an empty bucket: `burst` refusals in a row.
 */
export function applyClientLimits(socket: Socket, limits: ClientLimits): void {
  const bucket = new TokenBucket(limits.rate, limits.burst, Date.now());
  let refusedInARow = 0;
  socket.use(([event, ...args], next) => {
    const ack = args.at(-1);
    const refuse = (err: HeraldError) => {
      if (typeof ack === 'function') (ack as (r: unknown) => void)({ ok: false, error: err.toBody() });
    };
    if (!bucket.take(Date.now())) {
      refuse(new HeraldError('rate_limited'));
      if (++refusedInARow >= limits.burst) {
        socket.emit(DISCONNECT_EVENT, new HeraldError('rate_limited', 'Disconnected for sending too fast.').toBody());
        socket.disconnect(true);
      }
      return;
    }
    refusedInARow = 0;
    if (typeof event !== 'string' || !CLIENT_EVENTS.has(event)) {
      refuse(new HeraldError('unknown_event'));
      return;
    }
    next();
  });
}
