import { randomUUID } from 'node:crypto';
import type { Server } from 'socket.io';
import { HeraldError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { commandFromBus, type Command, type Report } from './commands.js';

/** Server-side events between replicas (Socket.IO's `serverSideEmit`, never seen by clients). */
const COMMAND_EVENT = 'herald:control';
const REPORT_EVENT = 'herald:control-report';

/** Everything the replicas reported within the deadline. */
export interface Outcome {
  /** This replica's report first, then the others' in the order they came. */
  reports: Report[];
  /** Replicas Redis counted as listening when the command was sent, this one included. */
  expected: number;
  /** Sessions waiting for their client (connection recovery) that the command changed or dropped, each counted once. */
  waiting: number;
}

/** Applies a command to the sessions waiting for their client; adds each one it changed to `changed` (see waiting.ts). */
export type WaitingApply = (command: Command, changed: Set<string>) => Promise<void>;

interface Pending {
  readonly reports: Report[];
  readonly others: number;
  done(): void;
}

/**
 * Runs a command on every replica: here, and on the others through the adapter's
 * `serverSideEmit`; each reports back what it did with another `serverSideEmit`.
 *
 * Why not `serverSideEmit` with an acknowledgement: it does the same counting (PUBSUB NUMSUB in
 * classic mode, SHARDNUMSUB in sharded mode and on a Redis Cluster) and hands over partial answers
 * on timeout, but that timeout is the classic adapter's `requestsTimeout` and a fixed 5 s in the
 * sharded one (socket.io-adapter's ClusterAdapter). Collecting the reports here gives one
 * deadline, `deadlineMs`, in every mode. A replica's report after the deadline is dropped; the
 * command still ran there.
 *
 * Delivery is Redis pub/sub's: at most once. A replica whose subscriber connection is down while
 * a command is sent never sees it (revocations still reach it: its verifier reads the store).
 *
 * Sessions waiting for their client (connection recovery) are in one store for all replicas, so
 * only the replica the command was sent to applies it there (`waiting`), counting each session
 * once: before sending the command, and again once every replica has reported. Each replica
 * reports only after the saves it had under way for the target are written, so a session whose
 * connection dropped while the command travelled is found by the second run; a session taken
 * back before the first is an open connection by the time the command reaches its replica.
 */
export class ClusterCommands {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly io: Server,
    private readonly deadlineMs: number,
    private readonly applyHere: (command: Command) => Promise<Report>,
    private readonly logger: Logger,
    private readonly waiting?: WaitingApply,
  ) {
    io.on(COMMAND_EVENT, (raw: unknown) => void this.received(raw));
    io.on(REPORT_EVENT, (raw: unknown) => this.reported(raw));
  }

  /** Rejects with `unavailable`, having done nothing, when Redis cannot say how many replicas there are. */
  async run(command: Command): Promise<Outcome> {
    const expected = await this.serverCount();
    const changed = new Set<string>();
    await this.applyToWaiting(command, changed, 'Redis is unreachable, so the command could not reach the sessions waiting for their clients; nothing was done. Retry.');
    const reports: Report[] = [];
    const others = expected - 1;
    let collected: Promise<void> = Promise.resolve();
    const id = randomUUID();
    if (others > 0) {
      let timer: NodeJS.Timeout | undefined;
      collected = new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.pending.delete(id);
          resolve();
        };
        timer = setTimeout(done, this.deadlineMs);
        this.pending.set(id, { reports, others, done });
      });
      this.io.serverSideEmit(COMMAND_EVENT, { id, command });
    }
    const here = await this.applyHere(command);
    await collected;
    await this.applyToWaiting(command, changed, 'The command reached the open connections, but Redis became unreachable before it reached every session waiting for its client. Retry: commands are idempotent.');
    return { reports: [here, ...reports], expected, waiting: changed.size };
  }

  private async applyToWaiting(command: Command, changed: Set<string>, failure: string): Promise<void> {
    try {
      await this.waiting?.(command, changed);
    } catch (err) {
      throw new HeraldError('unavailable', failure, { cause: err });
    }
  }

  private async serverCount(): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.deadlineMs} ms`)), this.deadlineMs);
    });
    try {
      return await Promise.race([this.io.of('/').adapter.serverCount(), late]);
    } catch (err) {
      throw new HeraldError('unavailable', 'Redis is unreachable, so the command could not reach the other replicas; nothing was done. Retry.', { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  private async received(raw: unknown): Promise<void> {
    const message = raw as { id?: unknown; command?: unknown } | null;
    const command = commandFromBus(message?.command);
    if (typeof message?.id !== 'string' || !command) {
      this.logger.warn('ignored a malformed control command from the bus');
      return;
    }
    try {
      const report = await this.applyHere(command);
      this.io.serverSideEmit(REPORT_EVENT, { id: message.id, report });
    } catch (err) {
      this.logger.error({ err, command: command.kind }, 'control command failed on this replica');
    }
  }

  private reported(raw: unknown): void {
    const message = raw as { id?: unknown; report?: Partial<Report> } | null;
    if (typeof message?.id !== 'string') return;
    // Reports to other replicas' commands arrive here too: every replica hears every report.
    const pending = this.pending.get(message.id);
    const r = message.report;
    if (!pending || typeof r?.replica !== 'string' || typeof r.count !== 'number') return;
    pending.reports.push({ replica: r.replica, count: r.count, ...(Array.isArray(r.connections) ? { connections: r.connections } : {}) });
    if (pending.reports.length >= pending.others) pending.done();
  }
}
