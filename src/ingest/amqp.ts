import { setTimeout as delay } from 'node:timers/promises';
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { toHeraldError } from '../errors.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Publisher } from '../publish/service.js';
import { parseEntry } from './entry.js';

/** Waits before requeueing a message that could not be published, so an outage is not a hot loop. */
const REQUEUE_DELAY_MS = 1000;

export interface AmqpIngestOptions {
  url: string;
  exchange: string;
  exchangeType: string;
  queue: string;
  bindingKeys: readonly string[];
  prefetch: number;
  maxBytes: number;
  publisher: Publisher;
  metrics: Metrics;
  logger: Logger;
}

/**
 * RabbitMQ ingest, at least once from the queue to the rooms:
 * - one durable queue bound to the exchange, consumed by every replica (competing consumers), with
 *   manual acks and `prefetch` unacknowledged messages per replica;
 * - the room is the `x-herald-room` header, else the routing key; the event is `x-herald-event`,
 *   else `message`; the body is the JSON data;
 * - a message is acknowledged after the publisher took it; if that fails it is requeued; a replica
 *   that dies leaves its unacknowledged messages to RabbitMQ, which gives them to another;
 * - `message_id` is the publish's dedupe key: a redelivered message is not shown twice in a
 *   history room;
 * - bad messages are acknowledged and counted as rejected, with the reason logged.
 */
export function startAmqpIngest(opts: AmqpIngestOptions): { close(): Promise<void> } {
  const { logger, metrics } = opts;
  const errorLog = throttle(10_000);
  let closing = false;
  let conn: ChannelModel | undefined;
  let wake: (() => void) | undefined;

  const handle = async (ch: Channel, msg: ConsumeMessage) => {
    const headers = msg.properties.headers ?? {};
    const room = typeof headers['x-herald-room'] === 'string' ? headers['x-herald-room'] : msg.fields.routingKey;
    const event = typeof headers['x-herald-event'] === 'string' ? headers['x-herald-event'] : 'message';
    const messageId = typeof msg.properties.messageId === 'string' && msg.properties.messageId !== '' ? msg.properties.messageId : undefined;
    try {
      const request = parseEntry({ room, event, data: msg.content }, opts.maxBytes);
      await opts.publisher.publish(request, 'amqp', messageId === undefined ? undefined : `amqp/${messageId}`);
      const ts = typeof msg.properties.timestamp === 'number' ? msg.properties.timestamp : undefined;
      // AMQP timestamps are seconds.
      metrics.ingested('amqp', 'delivered', ts === undefined ? undefined : Date.now() / 1000 - ts);
      ch.ack(msg);
    } catch (err) {
      const herr = toHeraldError(err);
      if (herr.code === 'unavailable' || herr.code === 'publish_timeout' || herr.code === 'internal') {
        metrics.ingested('amqp', 'retried');
        await delay(REQUEUE_DELAY_MS);
        ch.nack(msg, false, true);
        return;
      }
      metrics.ingested('amqp', 'rejected');
      logger.warn({ routingKey: msg.fields.routingKey, code: herr.code, reason: herr.message }, 'rejected an AMQP message');
      ch.ack(msg);
    }
  };

  const run = async () => {
    for (let attempt = 0; !closing; attempt++) {
      try {
        conn = await amqp.connect(opts.url);
        const closed = new Promise<void>((resolve) => {
          wake = resolve;
          conn!.on('close', () => resolve());
          conn!.on('error', (err: Error) => {
            if (errorLog.due()) logger.warn({ err: err.message }, 'AMQP connection error');
          });
        });
        const ch = await conn.createChannel();
        ch.on('error', (err: Error) => logger.warn({ err: err.message }, 'AMQP channel error'));
        await ch.assertExchange(opts.exchange, opts.exchangeType, { durable: true });
        await ch.assertQueue(opts.queue, { durable: true });
        for (const key of opts.bindingKeys) await ch.bindQueue(opts.queue, opts.exchange, key);
        await ch.prefetch(opts.prefetch);
        await ch.consume(opts.queue, (msg) => {
          if (msg) void handle(ch, msg);
        });
        logger.info({ queue: opts.queue, exchange: opts.exchange }, 'AMQP ingest consuming');
        attempt = 0;
        await closed;
      } catch (err) {
        if (errorLog.due()) logger.warn({ err: (err as Error).message }, 'AMQP ingest cannot connect; retrying');
      }
      if (!closing) await delay(Math.min(500 * 2 ** attempt, 5000));
    }
  };
  const running = run();

  return {
    async close() {
      closing = true;
      // A close that fails finds the connection gone already; what it had not acknowledged goes
      // back to the queue (at least once), so nothing is lost.
      await conn?.close().catch((err: Error) => logger.debug({ err: err.message }, 'AMQP connection close failed'));
      wake?.();
      await running;
    },
  };
}
