/**
 * The live-score publisher of the scale scenario: one broadcast a second to the all-scores room,
 * updates spread over the match rooms, a trickle to user rooms, each `{s: seq, t: publish call
 * time}` through `POST /v1/publish` (loadtest/harness/http-pipeline.ts, one request at a time per connection). Counts what
 * was accepted, which the clients' missing counts are measured against.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { HttpPipeline } from '../../loadtest/harness/http-pipeline.js';
import { ALL_ROOM, EVENTS, matchRoom, userId, type Accepted } from '../../loadtest/harness/fans/protocol.js';

export interface Rates {
  /** Publishes a second to the all-scores room (every fan gets each). */
  broadcast: number;
  /** Publishes a second over all match rooms together (round robin). */
  match: number;
  /** Publishes a second to random user rooms. */
  user: number;
}

const MAX_IN_FLIGHT = 256;

export class ScalePublisher {
  readonly accepted: Accepted = { all: 0, match: {}, user: {} };
  /** Publish call time of each all-scores seq. */
  readonly sentAt = new Map<number, number>();
  failed = 0;
  /** Failed publishes by HTTP status or error message. */
  readonly failures: Record<string, number> = {};
  private allSeq = 0;
  private readonly matchSeq: number[];
  private nextMatch = 0;
  private pipes: HttpPipeline[] = [];

  /**
   * `everyUrl`: each publish goes to every URL (servers with nothing between them, as the ceiling's
   * raw uWS processes are), and counts as accepted once all of them took it; otherwise each
   * publish goes to one URL, in turn.
   */
  constructor(urls: string[], private readonly key: string, private readonly matches: number, private readonly fans: number, private readonly everyUrl = false) {
    this.target(urls);
    this.matchSeq = new Array<number>(matches).fill(0);
  }

  /** Publishes through these replicas from now on (a storm's victim is never one of them). */
  target(urls: string[]): void {
    this.close();
    // One request at a time per connection: uWS closes a connection that pipelines behind a history-room publish.
    this.pipes = urls.map((u) => new HttpPipeline(u, 32, { pipeline: false }));
  }

  /** Publishes at `rates` for `seconds`, or until `stop()` resolves first; then waits for the answers. */
  async run(seconds: number, rates: Rates, stop?: Promise<unknown>): Promise<void> {
    const started = Date.now();
    const done = { all: 0, match: 0, user: 0 };
    const inFlight = new Set<Promise<void>>();
    let stopped = false;
    void stop?.then(() => (stopped = true));
    let i = 0;
    while (!stopped && Date.now() - started < seconds * 1000) {
      const elapsed = (Date.now() - started) / 1000;
      // A broadcast goes out at the start of each of its periods, not at the end.
      for (; done.all < Math.floor(elapsed * rates.broadcast) + 1 && done.all < seconds * rates.broadcast; done.all++) inFlight.add(this.post(i++, ALL_ROOM, EVENTS.all, ++this.allSeq, inFlight));
      for (; done.match < Math.floor(elapsed * rates.match); done.match++) {
        const m = this.nextMatch++ % this.matches;
        inFlight.add(this.post(i++, matchRoom(m), EVENTS.match, ++this.matchSeq[m]!, inFlight));
      }
      for (; done.user < Math.floor(elapsed * rates.user); done.user++) {
        inFlight.add(this.post(i++, `user:${userId(Math.floor(Math.random() * this.fans))}`, EVENTS.user, done.user + 1, inFlight));
      }
      if (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
      else await delay(5);
    }
    await Promise.all(inFlight);
  }

  private post(i: number, room: string, event: string, seq: number, inFlight: Set<Promise<void>>): Promise<void> {
    const pipes = this.everyUrl ? this.pipes : [this.pipes[i % this.pipes.length]!];
    const t = Date.now();
    if (room === ALL_ROOM) this.sentAt.set(seq, t);
    const body = JSON.stringify({ room, event, data: { s: seq, t } });
    const p: Promise<void> = Promise.all(pipes.map((pipe) => pipe.post('/v1/publish', body, { authorization: `Bearer ${this.key}` })))
      .then((answers) => {
        const res = answers.find((a) => a.status !== 200) ?? answers[0]!;
        if (res.status !== 200) this.fail(`${res.status} ${res.body.slice(0, 120)}`);
        else if (room === ALL_ROOM) this.accepted.all++;
        else if (event === EVENTS.match) this.accepted.match[room] = (this.accepted.match[room] ?? 0) + 1;
        else this.accepted.user[room] = (this.accepted.user[room] ?? 0) + 1;
      }, (err: Error) => this.fail(err.message))
      .finally(() => inFlight.delete(p));
    return p;
  }

  private fail(why: string): void {
    this.failed++;
    this.failures[why] = (this.failures[why] ?? 0) + 1;
  }

  close(): void {
    for (const p of this.pipes) p.close();
  }
}
