import type { Server, Socket } from 'socket.io';
import type { Reachability } from '../cluster/reachability.js';
import { ERRORS, type ErrorBody } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { closeWithOffset } from '../recovery/portable.js';
import { closeConnectionsInBatches, type Lifecycle } from './lifecycle.js';

/** The closes are spread over this long, so the other replicas do not take every client in one instant. */
export const OUTAGE_CLOSE_SPREAD_MS = 2000;

export interface OutageGuard {
  close(): void;
}

/**
 * True once Redis has been unreachable for `closeAfterMs` (REDIS_OUTAGE_CLOSE_SECONDS; 0: never),
 * until it is back: the moment `guardOutages` gives up on this replica's clients, from which new
 * handshakes are refused (`redis_unreachable`) so that they land on a replica that can serve them.
 */
export function refusingAfterOutage(reachability: Pick<Reachability, 'up' | 'downSince'>, closeAfterMs: number): () => boolean {
  return () => closeAfterMs > 0 && !reachability.up && Date.now() - (reachability.downSince ?? Date.now()) >= closeAfterMs;
}

export interface OutageGuardDeps {
  io: Server;
  reachability: Reachability;
  /** REDIS_OUTAGE_CLOSE_SECONDS in ms; 0: never. */
  closeAfterMs: number;
  lifecycle: Lifecycle;
  /** The offset of a socket's last packet: portable (src/recovery/portable.ts), or none without recovery. */
  finalOffset(socket: Socket): string | undefined;
  logger: Logger;
  metrics: Metrics;
  /** Ends the connections that are not sockets (event streams) with `body` and a `retry:`; how many. */
  closeOthers?(body: ErrorBody): number;
}

/**
 * A replica alive but cut off from Redis serves rooms that miss every other replica's messages,
 * and cannot save its clients' sessions. Readiness already sends new clients elsewhere; once the
 * outage has lasted `closeAfterMs`, this closes the clients it has, each with `herald:disconnect`
 * `{code: "redis_unreachable"}` and an offset any replica can resume from; new handshakes are
 * refused meanwhile (`refusingAfterOutage`). A full Redis outage looks the same from here: then
 * every replica does it, and clients retry (with socket.io-client's back-off) until Redis returns.
 */
export function guardOutages(deps: OutageGuardDeps): OutageGuard {
  const { reachability, logger } = deps;
  let gaveUp = false;
  let timer: NodeJS.Timeout | undefined;
  const body = { code: 'redis_unreachable' as const, message: ERRORS.redis_unreachable.message };

  const giveUp = async () => {
    timer = undefined;
    if (reachability.up || deps.lifecycle.phase !== 'ready') return;
    gaveUp = true;
    const clients = deps.io.of('/').sockets.size;
    // Event streams end at once: each resumes elsewhere from its `id:`, with nothing to save here.
    const streams = deps.closeOthers?.(body) ?? 0;
    logger.warn(
      { clients, downSeconds: Math.round((Date.now() - (reachability.downSince ?? Date.now())) / 1000) },
      'redis unreachable for REDIS_OUTAGE_CLOSE_SECONDS: closing clients so they reconnect to a replica that can serve them; refusing new ones until it is back',
    );
    const closed = await closeConnectionsInBatches(deps.io, OUTAGE_CLOSE_SPREAD_MS, {
      close: (socket) => closeWithOffset(socket, body, deps.finalOffset(socket)),
      stop: () => reachability.up || deps.lifecycle.phase !== 'ready',
    });
    deps.metrics.outageDisconnected(closed + streams);
  };
  const arm = () => {
    if (deps.closeAfterMs === 0 || timer || reachability.up) return;
    const since = reachability.downSince ?? Date.now();
    timer = setTimeout(() => void giveUp(), Math.max(0, since + deps.closeAfterMs - Date.now()));
    timer.unref();
  };
  reachability.onChange((up) => {
    if (!up) return arm();
    clearTimeout(timer);
    timer = undefined;
    if (gaveUp) logger.info('redis is back: accepting clients again');
    gaveUp = false;
  });
  arm();
  return {
    close() {
      clearTimeout(timer);
    },
  };
}
