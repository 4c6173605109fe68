import { randomUUID } from 'node:crypto';
import { throttle, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { WebhookEvent, WebhookType } from '../protocol/webhooks.js';
import { readCapped } from '../protocol/backend-answer.js';
import { SIGNATURE_HEADER, signatureOf } from '../protocol/signature.js';

/** A receiver has this long to answer one attempt; later counts as a failure and is retried. */
export const DELIVERY_TIMEOUT_MS = 5000;
/** Requests in flight at once per replica; the rest wait in the queue. */
const CONCURRENCY = 8;
/** The first retry waits this long, each next one twice as long, up to `MAX_BACKOFF_MS`. */
const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 60_000;

export interface WebhookSenderOptions {
  url: URL;
  secret: string;
  /** An event is retried until this long after its first attempt, then dropped. @default 300000 */
  retryMs: number;
  /** Events one replica holds (waiting, in flight, or waiting for a retry); more are dropped. @default 10000 */
  queueSize: number;
  metrics: Metrics;
  logger: Logger;
}

interface Job {
  readonly event: WebhookEvent;
  readonly body: string;
  readonly firstAttempt: number;
  attempts: number;
}

/**
 * Delivers webhooks at least once: `POST` of the event as JSON, signed (src/protocol/signature.ts). A non-2xx
 * answer, a timeout or a refused connection is retried with exponential backoff (1 s, 2 s, 4 s, …,
 * at most a minute, with jitter) and the same `id` until `retryMs` after the first attempt.
 *
 * Memory is bounded: past `queueSize` events held by this replica, new ones are dropped, counted
 * (`herald_webhooks_dropped_total{reason="queue_full"}`) and logged (throttled). Events are
 * handed to the receiver in the order they happened, CONCURRENCY at a time, so a receiver sees
 * them roughly in order; retries come later. Receivers order by `ts` and de-duplicate by `id`.
 */
export class WebhookSender {
  private readonly ready: Job[] = [];
  private readonly retrying = new Set<NodeJS.Timeout>();
  private inFlight = 0;
  private held = 0;
  private readonly dropLog = throttle(10_000);
  private idle: (() => void) | undefined;

  constructor(private readonly opts: WebhookSenderOptions) {}

  send(type: WebhookType, data: Record<string, unknown>): void {
    const event: WebhookEvent = { id: randomUUID(), type, ts: Date.now(), data };
    if (this.held >= this.opts.queueSize) {
      this.opts.metrics.webhookDropped(type, 'queue_full');
      if (this.dropLog.due()) this.opts.logger.warn({ type, id: event.id, queueSize: this.opts.queueSize }, 'webhook queue full: event dropped (see WEBHOOK_QUEUE_SIZE)');
      return;
    }
    this.held++;
    this.ready.push({ event, body: JSON.stringify(event), firstAttempt: Date.now(), attempts: 0 });
    this.pump();
  }

  /**
   * Waits up to `timeoutMs` for what is queued and in flight (the drain's connection.closed
   * events among them); what is left then, retries included, is dropped as `shutdown` and logged.
   */
  async close(timeoutMs: number): Promise<void> {
    if (this.ready.length > 0 || this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.idle = resolve;
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
    }
    for (const t of this.retrying) clearTimeout(t);
    const left = this.held;
    if (left > 0) {
      for (const job of this.ready) this.opts.metrics.webhookDropped(job.event.type, 'shutdown');
      this.opts.logger.warn({ left }, 'webhooks not delivered before shutdown');
    }
  }

  private pump(): void {
    while (this.inFlight < CONCURRENCY && this.ready.length > 0) void this.attempt(this.ready.shift()!);
    if (this.inFlight === 0 && this.ready.length === 0) this.idle?.();
  }

  private async attempt(job: Job): Promise<void> {
    this.inFlight++;
    job.attempts++;
    const started = performance.now();
    let outcome: string;
    try {
      const res = await fetch(this.opts.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'herald', [SIGNATURE_HEADER]: signatureOf(this.opts.secret, job.body) },
        body: job.body,
        signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
        redirect: 'manual',
      });
      // Read (capped) so the connection can be reused; an answer over the cap is a failed attempt.
      await readCapped(res);
      outcome = res.ok ? 'ok' : `status ${res.status}`;
    } catch (err) {
      outcome = (err as Error).name === 'TimeoutError' ? `no answer within ${DELIVERY_TIMEOUT_MS} ms` : (err as Error).message;
    }
    const seconds = (performance.now() - started) / 1000;
    this.inFlight--;
    if (outcome === 'ok') {
      this.opts.metrics.webhookAttempt(job.event.type, 'sent', seconds);
      this.held--;
    } else {
      this.opts.metrics.webhookAttempt(job.event.type, 'failed', seconds);
      this.retryLater(job, outcome);
    }
    this.pump();
  }

  private retryLater(job: Job, why: string): void {
    const backoff = Math.min(FIRST_BACKOFF_MS * 2 ** (job.attempts - 1), MAX_BACKOFF_MS) * (0.8 + Math.random() * 0.4);
    const { event } = job;
    if (Date.now() + backoff - job.firstAttempt > this.opts.retryMs) {
      this.held--;
      this.opts.metrics.webhookDropped(event.type, 'expired');
      this.opts.logger.warn({ type: event.type, id: event.id, attempts: job.attempts, last: why }, 'webhook dropped: no 2xx answer within WEBHOOK_RETRY_SECONDS');
      return;
    }
    this.opts.metrics.webhookAttempt(event.type, 'retried');
    if (job.attempts === 1) this.opts.logger.info({ type: event.type, id: event.id, why }, 'webhook failed; retrying');
    const timer = setTimeout(() => {
      this.retrying.delete(timer);
      this.ready.push(job);
      this.pump();
    }, backoff);
    timer.unref();
    this.retrying.add(timer);
  }
}
