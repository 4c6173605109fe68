import type { Logger } from '../observability/logger.js';
import { diagnose, type TargetName } from './diagnose.js';

/**
 * Whether this replica can use Redis, as readiness, `herald_redis_up` and the outage guard
 * (src/lifecycle/outage.ts) see it. One warning per outage, with its cause (the last error a
 * connection reported: a socket timeout for a silent partition, ECONNREFUSED for a Redis that is
 * down), the setting that names that Redis and the `reason` (src/cluster/diagnose.ts), and one
 * line when Redis is back. Never up since the start, the warning comes as soon as the first
 * attempt failed: a misconfiguration (a closed port, a server that is not Redis, a wrong
 * password, TLS on one side only) shows at once, not as a readiness probe that stays 503.
 */
export interface Reachability {
  readonly up: boolean;
  /** When the current outage began (ms since the epoch; the start when never up); undefined while up. */
  readonly downSince: number | undefined;
  /** Called on every change, `up` or not. */
  onChange(listener: (up: boolean) => void): void;
  close(): void;
}

export interface ReachabilityOptions {
  isReady(): boolean;
  /** Clients whose status events can change `isReady`. */
  clients: readonly { on(event: string, listener: () => void): unknown }[];
  /** The last error a connection reported. */
  cause(): Error | undefined;
  /** The setting and server of this Redis, named in the warnings. */
  target: TargetName;
  /** `isReady` can also change without an event (a PING answered): looked at this often. */
  checkMs: number;
  logger: Logger;
}

export function trackReachability(opts: ReachabilityOptions): Reachability {
  const { logger } = opts;
  let up = false;
  let everUp = false;
  let downSince: number | undefined = Date.now();
  let warned = false;
  const listeners: ((up: boolean) => void)[] = [];
  const { setting, server } = opts.target;
  /** The fields of a warning: where, why (`reason`, with a hint), and the error itself (`cause`). */
  const describe = () => {
    const err = opts.cause();
    if (!err) return { fields: { setting, server, cause: 'connection closed' }, hint: 'connection closed' };
    const { reason, hint } = diagnose(err, opts.target);
    return { fields: { setting, server, reason, cause: err.message }, hint };
  };
  const check = () => {
    const now = opts.isReady();
    if (now === up) {
      // Never up since the start: warned once the first connection attempt has failed.
      if (!now && !everUp && !warned && opts.cause() !== undefined) {
        warned = true;
        const { fields, hint } = describe();
        logger.warn(fields, `redis unreachable at start: ${setting} ${server}: ${hint}; this replica is not ready (/readyz 503) until it connects`);
      }
      return;
    }
    up = now;
    if (now) {
      if (warned) logger.info({ downSeconds: Math.round((Date.now() - downSince!) / 100) / 10 }, 'redis reachable again; ready');
      everUp = true;
      warned = false;
      downSince = undefined;
    } else {
      downSince = Date.now();
      warned = true;
      logger.warn(describe().fields, 'redis unreachable; this replica is not ready (/readyz 503) until it is back');
    }
    for (const l of listeners) l(now);
  };
  for (const client of opts.clients) for (const event of ['ready', 'close', 'end', 'reconnecting']) client.on(event, check);
  const timer = setInterval(check, opts.checkMs);
  timer.unref();
  return {
    // Looked at when read as well: `isReady` turns true without an event (the resubscribe's PING
    // answered), and a reader right after must not see an outage that is over.
    get up() {
      check();
      return up;
    },
    get downSince() {
      check();
      return downSince;
    },
    onChange(listener) {
      listeners.push(listener);
    },
    close() {
      clearInterval(timer);
    },
  };
}

/**
 * `logger`, with its warnings logged at debug level while Redis is known to be unreachable: the
 * outage has had its one warning, with the cause, and every part that writes to Redis would
 * otherwise add its own every 10 s (a heartbeat, presence, a session that could not be saved).
 */
export function quietWhileDown(logger: Logger, reachability: Pick<Reachability, 'up'>): Logger {
  return new Proxy(logger, {
    get(target, prop) {
      if (prop === 'warn' && !reachability.up) return target.debug.bind(target);
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
