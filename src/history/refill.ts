import type { Server } from 'socket.io';
import { setTimeout as delay } from 'node:timers/promises';
import type { HistoryBackend, HistoryEntry, HistoryPolicy } from './types.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { RESET_EVENT, type MessageId, type Reset } from '../protocol/events.js';
import { isInternalRoom, type RoomName } from '../protocol/rooms.js';

/** Entries fetched per history read while refilling. */
const REFILL_PAGE = 1000;
/** Rooms refilled at once after a gap; the rest wait their turn. */
const REFILL_CONCURRENCY = 16;
/** A refill that cannot read the history retries after 100 ms, 200 ms, ... this many times. */
const REFILL_ATTEMPTS = 7;
const REFILL_RETRY_BASE_MS = 100;

/**
 * A room whose live entries are held: the bus lost entries of it, and they must be read from
 * the stream and delivered before anything that came after them.
 */
interface Refill {
  held: HistoryEntry[];
  /** The read is under way. */
  running: boolean;
  /** The bus came back again while the read ran: read once more at the end. */
  again: boolean;
}

/** What a refill needs of the history rooms it refills (`HistoryRooms`). */
export interface RefillHost {
  readonly io: Server;
  readonly backend: HistoryBackend;
  policyFor(room: RoomName): HistoryPolicy | undefined;
  /** Where `room`'s live delivery here stands: the last entry delivered, else the lowest settled catch-up. */
  lastDelivered(room: RoomName): MessageId | undefined;
  /** Members were told to reload up to `offset`: live delivery continues after it. */
  reloadFrom(room: RoomName, offset: MessageId): void;
  /** Members are about to be told to reload: whatever they are sent next is whole (no delta). */
  restart(room: RoomName): void;
  /** Delivers an entry to the room's local members (live, or to catch-ups as they need it). */
  deliver(entry: HistoryEntry): void;
  /** A live entry, as if it had just arrived (held ones, once their room is refilled). */
  accept(entry: HistoryEntry): void;
}

/**
 * Live delivery of history rooms across a bus gap (the pub/sub connection dropped and came back):
 * from the moment the bus is lost, live entries are held; once it is back, each local room's
 * stream is read from the last entry delivered here and what pub/sub lost is delivered, in order
 * and once, then the held entries. When the stream no longer has that entry (trimmed, or Redis
 * lost its data) the members get `herald:reset` `{room, offset, code: "history_lost"}`.
 */
export class GapRefill {
  private readonly refills = new Map<RoomName, Refill>();
  /** While the bus is down: resolves once it delivers again. Entries arriving meanwhile are held. */
  private resumed: Promise<void> | undefined;
  private readonly resetLog = throttle(10_000);

  constructor(
    private readonly host: RefillHost,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {}

  /**
   * Takes a live entry into its room's refill when that room awaits one (from the moment the bus
   * was lost: the first entries after a reconnect can arrive before the reconnect is reported).
   */
  holds(entry: HistoryEntry): boolean {
    let refill = this.refills.get(entry.room);
    if (!refill && this.resumed) this.refills.set(entry.room, (refill = { held: [], running: false, again: false }));
    refill?.held.push(entry);
    return refill !== undefined;
  }

  /**
   * The bus lost entries. Nothing is delivered live from now on (held instead) until it is back
   * and every local room has been read from the last entry delivered here.
   */
  lost(resumed: Promise<void>): void {
    this.resumed = resumed;
    void resumed.then(() => {
      if (this.resumed === resumed) this.resumed = undefined;
      return this.refillAll();
    });
  }

  /** After a gap: refills every local history room (and any with held entries), a few at a time. */
  private async refillAll(): Promise<void> {
    const local = [...this.host.io.of('/').adapter.rooms.keys()].filter((room) => !isInternalRoom(room) && this.host.policyFor(room));
    const rooms = [...new Set([...local, ...this.refills.keys()])];
    const next = async (): Promise<void> => {
      for (let room = rooms.pop(); room !== undefined; room = rooms.pop()) await this.refill(room);
    };
    await Promise.all(Array.from({ length: Math.min(REFILL_CONCURRENCY, rooms.length) }, next));
  }

  /**
   * Delivers what `room`'s members missed during a gap: every entry after the last one delivered
   * here (or, before any was, after the lowest position a catching-up member settled at).
   */
  private async refill(room: RoomName): Promise<void> {
    let refill = this.refills.get(room);
    if (refill?.running) {
      refill.again = true;
      return;
    }
    if (!refill) this.refills.set(room, (refill = { held: [], running: false, again: false }));
    refill.running = true;
    // Catching-up sockets need no more: entries they miss are delivered through `deliver`, which
    // buffers them for a replay under way and filters them by a settling socket's mark.
    let mark = this.host.lastDelivered(room);
    let delivered = 0;
    try {
      if (mark === undefined) return;
      for (let attempt = 1; ; attempt++) {
        try {
          for (;;) {
            const page = await this.host.backend.read(room, mark, REFILL_PAGE);
            if (!page.recovered) {
              await this.reset(room, 'history_lost');
              return;
            }
            for (const e of page.entries) {
              this.host.deliver(e);
              mark = e.id;
              delivered++;
            }
            if (page.entries.length < REFILL_PAGE && !refill.again) break;
            refill.again = false;
            // Down again: read the rest once it is back.
            if (this.resumed) await this.resumed;
          }
          break;
        } catch (err) {
          if (attempt >= REFILL_ATTEMPTS || !this.host.io.of('/').adapter.rooms.has(room)) {
            this.logger.warn({ room, err: (err as Error).message }, 'history unreachable after a bus gap; members told to reload');
            await this.reset(room, 'history_unreachable');
            return;
          }
          await delay(REFILL_RETRY_BASE_MS * 2 ** (attempt - 1));
        }
      }
      if (delivered > 0) this.logger.info({ room, delivered }, 'refilled a history room after a bus gap');
      this.metrics.historyRefilled(delivered);
    } finally {
      this.refills.delete(room);
      for (const e of refill.held) this.host.accept(e);
    }
  }

  /** Tells `room`'s members their stream has a gap herald cannot fill, with the position to continue from. */
  private async reset(room: RoomName, code: Reset['code']): Promise<void> {
    const policy = this.host.policyFor(room);
    // Without a position the members are told to reload with no offset (their next subscribe
    // starts at the room's position then): the reset below says so, nothing is hidden.
    const offset = code === 'history_lost' && policy ? (await this.host.backend.position(room, policy).catch(() => undefined))?.id : undefined;
    // Entries up to the new position are part of what the members reload.
    if (offset !== undefined) this.host.reloadFrom(room, offset);
    this.host.restart(room);
    this.metrics.historyReset(code);
    if (this.resetLog.due()) this.logger.warn({ room, code, offset }, 'history gap cannot be filled; members told to reload (herald:reset)');
    const body: Reset = { room, code, ...(offset !== undefined ? { offset } : {}) };
    this.host.io.local.to(room).emit(RESET_EVENT, body);
  }
}
