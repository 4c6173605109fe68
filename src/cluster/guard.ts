/**
 * The Redis adapter fires `publish` and `(p)subscribe` without handling the returned promise, so a
 * rejection during an outage would be an unhandled rejection, which ends a Node 20 process.
 * This wraps a client so those commands report failures to `onFailure` and resolve instead.
 * Every other property passes through untouched.
 */
const GUARDED_COMMANDS = new Set(['publish', 'subscribe', 'psubscribe', 'unsubscribe', 'punsubscribe', 'spublish', 'ssubscribe', 'sunsubscribe']);

export type CommandFailure = (command: string, err: Error) => void;

export function guardFireAndForget<T extends object>(client: T, onFailure: CommandFailure): T {
  return new Proxy(client, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      if (typeof prop === 'string' && GUARDED_COMMANDS.has(prop)) {
        // Called synchronously so commands keep the order in which the adapter issued them.
        return (...args: unknown[]) => {
          try {
            return Promise.resolve(value.apply(target, args)).catch((err: Error) => onFailure(prop, err));
          } catch (err) {
            onFailure(prop, err as Error);
            return Promise.resolve();
          }
        };
      }
      return value.bind(target);
    },
  });
}
