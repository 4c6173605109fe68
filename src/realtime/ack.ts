import { toHeraldError } from '../errors.js';

/** Calls the client's acknowledgement callback with `body`, if the client asked for one. */
export function reply(ack: unknown, body: unknown): void {
  if (typeof ack === 'function') (ack as (b: unknown) => void)(body);
}

/** Runs `work` and acknowledges `{ok: true, ...result}`, or `{ok: false, error: {code, message}}` if it throws. */
export function answer(ack: unknown, work: () => Promise<object>): void {
  work().then(
    (result) => reply(ack, { ok: true, ...result }),
    (err: unknown) => reply(ack, { ok: false, error: toHeraldError(err).toBody() }),
  );
}
