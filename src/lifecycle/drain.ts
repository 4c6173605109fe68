import { setTimeout as delay } from 'node:timers/promises';
import type { Server, Socket } from 'socket.io';
import { ERRORS } from '../errors.js';
export { WEBHOOK_FLUSH_MS } from '../events/setup.js';
import type { Logger } from '../observability/logger.js';
import { closeWithOffset } from '../recovery/portable.js';
import { closeConnectionsInBatches, type Lifecycle } from './lifecycle.js';

/** Time allowed for Redis clients to quit after the drain. */
export const BUS_CLOSE_TIMEOUT_MS = 2000;

export interface DrainSteps {
  io: Server;
  lifecycle: Lifecycle;
  /**
   * DRAIN_DELAY_SECONDS: how long readiness is 503 while this replica still accepts and serves,
   * before it refuses new clients and starts closing its own; a balancer that learns of the drain
   * from its health check stops sending clients here meanwhile.
   */
  delayMs: number;
  drainMs: number;
  /**
   * What is written to Redis after the connections are closed (sessions, webhook room state,
   * the heartbeat's release) gets this long in all: REDIS_TIMEOUT_SECONDS + `WEBHOOK_FLUSH_MS`.
   */
  redisBudgetMs: number;
  /** False while Redis is unreachable: said in the log, where the drain could not do everything. */
  redisUp(): boolean;
  /** The offset of a socket's last packet (see `closeWithOffset`). */
  finalOffset(socket: Socket): string | undefined;
  /** Before the connections close: stop taking work (ingest). */
  stopIntake(): Promise<void>;
  /** After they closed, without Redis: timers, Socket.IO, the port, the metrics server. */
  closeLocal(): Promise<void>;
  /** Writes to Redis, each bounded by REDIS_TIMEOUT_SECONDS; run together within `redisBudgetMs`. */
  redisWork: readonly { what: string; run(): Promise<unknown> }[];
  closeBus(timeoutMs: number): Promise<void>;
  /** Counters read before and after, for the summary. */
  sessionsNotSaved(): number;
  busPublishFailures(): number;
  logger: Logger;
}

/**
 * The drain, bounded even while Redis is unreachable (a partition): readiness turns 503 at once;
 * after `delayMs` (still accepting and serving: a balancer that learns of the drain from its health
 * check sends reconnecting clients here until it has seen that) new clients are refused and the
 * connected ones closed in batches
 * over DRAIN_SECONDS, each with `herald:disconnect` `{code: "draining"}` and an offset it can
 * recover from on any replica even when its session cannot be saved; then local parts close, and
 * the Redis work gets one shared budget, after which whatever has not answered is given up and
 * logged. The process exits 0 when the drain did all it could within its bounds.
 */
export async function drainReplica(s: DrainSteps): Promise<void> {
  const { logger } = s;
  s.lifecycle.advance('draining');
  if (s.delayMs > 0) {
    logger.info({ connections: s.io.of('/').sockets.size, drainDelaySeconds: s.delayMs / 1000 }, 'not ready: draining after DRAIN_DELAY_SECONDS');
    await delay(s.delayMs);
  }
  s.lifecycle.refuseConnections();
  const [notSavedBefore, busFailuresBefore] = [s.sessionsNotSaved(), s.busPublishFailures()];
  logger.info({ connections: s.io.of('/').sockets.size, drainSeconds: s.drainMs / 1000, redis: s.redisUp() ? 'up' : 'down' }, 'draining');
  // Stop taking work first: what this replica does not acknowledge goes to the others.
  await s.stopIntake();
  const body = { code: 'draining' as const, message: ERRORS.draining.message };
  const closed = await closeConnectionsInBatches(s.io, s.drainMs, { close: (socket) => closeWithOffset(socket, body, s.finalOffset(socket)) });
  await s.closeLocal();
  const unfinished = await settleWithin(s.redisBudgetMs, s.redisWork);
  await s.closeBus(BUS_CLOSE_TIMEOUT_MS);
  s.lifecycle.advance('stopped');
  const sessionsNotSaved = s.sessionsNotSaved() - notSavedBefore;
  const broadcastsLost = s.busPublishFailures() - busFailuresBefore;
  if (unfinished.length > 0 || sessionsNotSaved > 0 || broadcastsLost > 0) {
    logger.warn(
      { unfinished, sessionsNotSaved, broadcastsLost, redis: s.redisUp() ? 'up' : 'down' },
      'drained without everything reaching Redis: clients whose session was not saved recover from their last offset elsewhere; the other replicas release this one\'s presence and rooms once its heartbeat expires (PRESENCE_TTL_SECONDS)',
    );
  }
  logger.info({ closed }, 'drained');
}

/** Runs `work` together; resolves within `budgetMs` with what had not finished by then. */
async function settleWithin(budgetMs: number, work: readonly { what: string; run(): Promise<unknown> }[]): Promise<string[]> {
  const pending = new Set(work.map((w) => w.what));
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, budgetMs);
  });
  const all = Promise.all(
    work.map((w) =>
      w.run().then(
        () => pending.delete(w.what),
        // Each part logs its own failures (throttled); the summary names what did not finish.
        () => undefined,
      ),
    ),
  );
  await Promise.race([all, deadline]);
  clearTimeout(timer);
  return [...pending];
}
