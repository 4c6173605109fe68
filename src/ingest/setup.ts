import type { LinkTiming } from '../cluster/link.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Publisher } from '../publish/service.js';
import { startAmqpIngest } from './amqp.js';
import { startStreamIngest } from './redis-streams.js';

export interface Ingest {
  /** Starts consuming (once the replica serves): INGEST_STREAMS on REDIS_URL, AMQP_URL. */
  start(): void;
  /** Stops consuming and lets what is in flight finish; the first thing a drain does. */
  close(): Promise<void>;
}

/** The configured ingests, all through `publisher`, as HTTP publishes go. Nothing without INGEST_STREAMS or AMQP_URL. */
export function createIngest(config: Config, deps: { publisher: Publisher; timing: LinkTiming; metrics: Metrics; logger: Logger }): Ingest {
  const common = { publisher: deps.publisher, maxBytes: config.publishMaxBytes, metrics: deps.metrics, logger: deps.logger };
  const running: { close(): Promise<void> }[] = [];
  return {
    start() {
      if (config.ingestStreams.length > 0 && config.redisUrl) {
        running.push(
          startStreamIngest({
            ...common,
            redisUrl: config.redisUrl,
            timing: deps.timing,
            streams: config.ingestStreams,
            group: config.ingestGroup,
            consumer: config.replicaId,
            batch: config.ingestBatch,
            claimIdleMs: config.ingestClaimIdleSeconds * 1000,
          }),
        );
      }
      if (config.amqpUrl) {
        running.push(
          startAmqpIngest({
            ...common,
            url: config.amqpUrl,
            exchange: config.amqpExchange,
            exchangeType: config.amqpExchangeType,
            queue: config.amqpQueue,
            bindingKeys: config.amqpBindingKeys,
            prefetch: config.amqpPrefetch,
          }),
        );
      }
    },
    async close() {
      await Promise.all(running.map((i) => i.close()));
    },
  };
}
