import type { Server } from 'socket.io';
import type { Bus } from '../cluster/bus.js';
import type { Heartbeat } from '../cluster/heartbeat.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { PatternTable } from '../protocol/patterns.js';
import { Announcer } from './announcer.js';
import { createMemoryTransitions } from './transitions.js';
import { createRedisTransitions } from './transitions-redis.js';
import { WebhookSender } from './webhooks.js';
import type { OtherMembers } from '../protocol/members.js';

/** On drain, webhooks still queued (the drained connections' `connection.closed`) get this long. */
export const WEBHOOK_FLUSH_MS = 3000;

export interface BackendEvents {
  /** Call after the connections are closed, before Redis is. */
  close(): Promise<void>;
}

/**
 * Webhooks (WEBHOOK_URL), built from what the app already has: the adapter's room events, the
 * bus's Redis and the replica heartbeat for cluster-wide transitions (this process's memory on a
 * single node). Undefined without WEBHOOK_URL: nothing is listened to or written.
 */
export function createBackendEvents(deps: {
  config: Config;
  io: Server;
  bus: Bus;
  heartbeat: Heartbeat | undefined;
  metrics: Metrics;
  logger: Logger;
  /** For the room state written to Redis (quiet during an outage); `logger` by default. */
  redisLogger?: Logger;
  /** Connections that are not sockets (event streams). */
  others?: OtherMembers;
}): BackendEvents | undefined {
  const { config, io, bus, heartbeat, logger } = deps;
  if (!config.webhookUrl || !config.webhookSecret) return undefined;
  const sender = new WebhookSender({
    url: config.webhookUrl,
    secret: config.webhookSecret,
    retryMs: config.webhookRetrySeconds * 1000,
    queueSize: config.webhookQueueSize,
    metrics: deps.metrics,
    logger,
  });
  const announcer = new Announcer({
    io,
    replicaId: config.replicaId,
    types: new Set(config.webhookEvents),
    presenceRooms: new PatternTable(config.presenceRooms.map((r) => ({ pattern: r.pattern, value: true }))),
    send: (type, data) => sender.send(type, data),
    ...(deps.others ? { others: deps.others } : {}),
  });
  const announce = announcer.announced.bind(announcer);
  const delayMs = config.webhookVacateDelaySeconds * 1000;
  const transitions =
    bus.redis && heartbeat
      ? createRedisTransitions({
          redis: bus.redis.pub,
          keyPrefix: config.redisKeyPrefix,
          heartbeat,
          delayMs,
          sweepMs: (config.presenceTtlSeconds * 1000) / 3,
          held: () => announcer.held(),
          announce,
          logger: deps.redisLogger ?? logger,
        })
      : createMemoryTransitions(delayMs, announce);
  announcer.start(transitions);
  return {
    async close() {
      await transitions.close();
      await sender.close(WEBHOOK_FLUSH_MS);
    },
  };
}
