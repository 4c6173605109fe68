import { integer, list, oneOf, setting } from '../parse.js';

/** Redis Streams and RabbitMQ ingest. */
export const INGEST_SETTINGS = [
  setting({
    env: 'INGEST_STREAMS',
    key: 'ingestStreams',
    doc: 'Comma-separated Redis Stream keys that all replicas read as one consumer group (needs `REDIS_URL`); each entry is broadcast once, then acknowledged. Entry fields: `room`, `event`, `data` (JSON).',
    defaultText: '(unset)',
    parse: (raw, env) => {
      const streams = list(raw);
      if (streams.length > 0 && !env.REDIS_URL) throw new Error('needs REDIS_URL (a non-cluster Redis)');
      return Object.freeze(streams);
    },
  }),
  setting({
    env: 'INGEST_GROUP',
    key: 'ingestGroup',
    doc: 'Consumer group for `INGEST_STREAMS` (created at the end of each stream if missing); each replica consumes as its `REPLICA_ID`.',
    defaultText: 'herald',
    parse: (raw) => raw || 'herald',
  }),
  setting({
    env: 'INGEST_CLAIM_IDLE_SECONDS',
    key: 'ingestClaimIdleSeconds',
    doc: 'Entries another replica read but did not acknowledge for this long (it crashed) are claimed (`XAUTOCLAIM`) and broadcast.',
    defaultText: '30',
    parse: integer(1, 86_400, 30),
  }),
  setting({
    env: 'INGEST_BATCH',
    key: 'ingestBatch',
    doc: 'Entries read per `XREADGROUP`.',
    defaultText: '100',
    parse: integer(1, 10_000, 100),
  }),
  setting({
    env: 'AMQP_URL',
    key: 'amqpUrl',
    doc: 'RabbitMQ (`amqp://user:pass@host:5672/vhost` or `amqps://`): herald consumes `AMQP_QUEUE` with manual acks and broadcasts each message.',
    defaultText: '(unset)',
    parse: (raw) => {
      if (!raw) return undefined;
      if (!/^amqps?:\/\//.test(raw)) throw new Error('must start with amqp:// or amqps://');
      return raw;
    },
  }),
  setting({
    env: 'AMQP_EXCHANGE',
    key: 'amqpExchange',
    doc: 'Exchange the ingest queue is bound to (declared durable if missing).',
    defaultText: 'herald',
    parse: (raw) => raw || 'herald',
  }),
  setting({
    env: 'AMQP_EXCHANGE_TYPE',
    key: 'amqpExchangeType',
    doc: 'Type of `AMQP_EXCHANGE`: topic, direct, fanout or headers.',
    defaultText: 'topic',
    parse: oneOf(['topic', 'direct', 'fanout', 'headers'], 'topic'),
  }),
  setting({
    env: 'AMQP_QUEUE',
    key: 'amqpQueue',
    doc: 'Durable queue all replicas consume (competing consumers: each message is broadcast by one replica).',
    defaultText: 'herald.ingest',
    parse: (raw) => raw || 'herald.ingest',
  }),
  setting({
    env: 'AMQP_BINDING_KEYS',
    key: 'amqpBindingKeys',
    doc: 'Comma-separated binding keys of the queue to the exchange.',
    defaultText: '#',
    parse: (raw) => Object.freeze(raw ? list(raw) : ['#']),
  }),
  setting({
    env: 'AMQP_PREFETCH',
    key: 'amqpPrefetch',
    doc: 'Unacknowledged messages one replica may hold.',
    defaultText: '100',
    parse: integer(1, 65_535, 100),
  }),
] as const;
