import type { MessageId } from '../protocol/events.js';
import type { RoomName } from '../protocol/rooms.js';

/** A message as history keeps it and as every replica delivers it. */
export interface HistoryEntry {
  /** Stream offset, `<ms>-<seq>`: ordered within a room, delivered to clients as `meta.id`. */
  readonly id: MessageId;
  readonly room: RoomName;
  readonly event: string;
  readonly data: unknown;
  /** Publish time, ms since the epoch. */
  readonly ts: number;
}

/** How much of a room's history is kept. */
export interface HistoryPolicy {
  /** Entries kept (approximately). */
  readonly size: number;
  /** Seconds kept after the room's last publish. */
  readonly ttlSeconds: number;
}

export interface HistoryPage {
  /** Entries after `since`, oldest first. */
  readonly entries: HistoryEntry[];
  /**
   * True when `entries` are every message published after `since` (up to `limit`): the entry
   * `since` is still in the history. False when it is not (trimmed, expired, from a Redis that
   * has since lost its data, or never existed): the caller must reload its state.
   */
  readonly recovered: boolean;
}

/**
 * History plus the broadcast of history rooms, in one place so they cannot disagree.
 *
 * Guarantees:
 * - `publish` appends and broadcasts atomically: every delivered message is in the history and
 *   every history entry was broadcast to every replica connected to the backend at that moment.
 *   If the append fails, nothing is broadcast and `publish` rejects.
 * - Entries of one room are delivered to every replica in id order, which is publish order.
 * - Delivery to replicas is at-most-once; `onGap` says when a replica may have missed entries, and
 *   `read` recovers what a replica or client missed.
 */
/** What `publish` did: the entry, and whether it had been published before under the same key. */
export interface Published {
  readonly entry: HistoryEntry;
  /** True when `dedupeKey` was seen before: nothing was appended or broadcast this time. */
  readonly duplicate: boolean;
}

export interface HistoryBackend {
  /**
   * Appends and broadcasts. With `dedupeKey` (an ingest entry id), a key already published in this
   * room within the room's TTL is not published again: the first publish's id is returned.
   */
  publish(room: RoomName, event: string, data: unknown, policy: HistoryPolicy, dedupeKey?: string): Promise<Published>;
  /** Up to `limit` entries after `since` (exclusive); without `since`, the oldest kept. */
  read(room: RoomName, since: MessageId | undefined, limit: number): Promise<HistoryPage>;
  /**
   * The room's newest `count` entries (at most `LAST_MAX`, src/protocol/events.ts), oldest first; fewer when it keeps
   * fewer, none for a room without entries. One read: an entry published meanwhile is either in
   * it or newer than all of it.
   */
  latest(room: RoomName, count: number): Promise<HistoryEntry[]>;
  /**
   * The room's current position: the id of its newest entry, usable as `since`. A room with no
   * history yet gets a marker entry (never delivered, never returned by `read`) so that even a
   * client that has received nothing can later recover from here; that creates the room's
   * storage (`created`), kept until the room's TTL ends. With `create` false a room without
   * history stays without: undefined.
   */
  position(room: RoomName, policy: HistoryPolicy, create?: boolean): Promise<{ id: MessageId; created: boolean } | undefined>;
  /** Registers the one receiver of every entry published by any replica. */
  onEntry(handler: (entry: HistoryEntry) => void): void;
  /**
   * Starts receiving `room`'s entries, when receiving is per room (sharded Redis); resolves once
   * they will arrive. Idempotent; a no-op where every replica receives every room.
   */
  watch(room: RoomName): Promise<void>;
  /** Stops receiving `room`'s entries (its last local member left). */
  unwatch(room: RoomName): void;
  /**
   * Registers the one receiver of gap notices. `handler` is called as soon as the connection that
   * delivers entries is lost, with a promise that resolves once entries flow again: what was
   * published in between never reaches `onEntry` but is in the history, and a `read` issued after
   * `resumed` resolved misses none of it. Entries can reach `onEntry` just before `resumed`
   * resolves (the reconnect is confirmed after the first of them). Never called where delivery
   * cannot break (memory).
   */
  onGap(handler: (resumed: Promise<void>) => void): void;
  close(): Promise<void>;
}
