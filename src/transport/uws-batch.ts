import type { TemplatedApp } from 'uWebSockets.js';

/**
 * Batches a process's room publishes to uWS, so that under load each subscriber gets several
 * messages per system call.
 *
 * uWS queues what is published to a topic and sends it at the end of the event-loop turn, all of a
 * subscriber's queued messages in one `send` — but only what that turn published. When replicas
 * share cores with each other and with Redis, a replica's turns are short and frequent, each with
 * a message or two: in `bench/probe.ts herald-uws` at 2,000 messages/s, 2.9 deliveries per
 * `sendto` against 10.6 for a single replica at the same rate, and the extra system calls tipped
 * two replicas into saturation (BENCHMARKS.md). Centrifugo PRO's `client.write_delay` makes the
 * same trade per connection.
 *
 * The rule: a publish goes to uWS at once unless another went less than `windowMs` ago; then it
 * waits until `windowMs` after that one, and everything published meanwhile goes with it, in
 * order. An idle replica adds no delay, a busy one at most `windowMs` (plus timer lateness).
 * `windowMs` 0 turns batching off.
 *
 * What must not change is what each connection receives and in which order, so the queue is
 * flushed before anything that could reorder or redirect a queued message (see
 * `UwsDelivery`): a direct write to a WebSocket connection, since uWS sends a
 * subscriber's queued topic messages before a direct one; and a join, a leave or an upgrade to
 * WebSocket, since uWS would then deliver a queued message to a different set of sockets than
 * the one in the rooms when it was published.
 */
export class PublishBatcher {
  private queue: [topic: string, message: string | Buffer, binary: boolean][] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastFlush = -Infinity;

  /**
   * @param compressFrom with compression on, the length from which a publish is deflated (uWS
   *   does so only for subscribers that negotiated it); undefined: never.
   */
  constructor(
    private readonly app: TemplatedApp,
    private readonly windowMs: number,
    private readonly compressFrom?: number,
  ) {}

  publish(topic: string, message: string | Buffer, binary: boolean): void {
    if (this.timer === undefined) {
      const now = performance.now();
      if (now - this.lastFlush >= this.windowMs) {
        this.lastFlush = now;
        this.send(topic, message, binary);
        return;
      }
      this.timer = setTimeout(this.flush, this.lastFlush + this.windowMs - now);
    }
    this.queue.push([topic, message, binary]);
  }

  /** Whether publishes are waiting. */
  get pending(): boolean {
    return this.queue.length > 0;
  }

  /** Hands everything queued to uWS now, in order. */
  readonly flush = (): void => {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.queue.length === 0) return;
    this.lastFlush = performance.now();
    const queue = this.queue;
    this.queue = [];
    for (const [topic, message, binary] of queue) this.send(topic, message, binary);
  };

  private send(topic: string, message: string | Buffer, binary: boolean): void {
    this.app.publish(topic, message, binary, this.compressFrom !== undefined && message.length >= this.compressFrom);
  }
}
