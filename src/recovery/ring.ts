import type { MessageId } from '../protocol/events.js';

/**
 * A history entry id, `<ms>-<seq>`, as two numbers. The journal keeps ids this way so that
 * nothing it holds can keep a string alive that shares memory with the message it came from (a
 * V8 slice of a 60 KB pub/sub message is a 60 KB retainer), and so that an entry costs 24 bytes
 * whatever the message's size. `isStreamId` allows 15 digits per part: exact as doubles.
 */
export type IdParts = readonly [ms: number, sub: number];

/** `ms` of an id that cannot be written back exactly (not in canonical form): a position that cannot be told. */
export const UNKNOWN_ID = -1;

export function idParts(id: MessageId): IdParts {
  const dash = id.indexOf('-');
  const ms = Number(id.slice(0, dash));
  const sub = Number(id.slice(dash + 1));
  return dash > 0 && `${ms}-${sub}` === id ? [ms, sub] : [UNKNOWN_ID, 0];
}

export function idOf(ms: number, sub: number): MessageId | undefined {
  return ms === UNKNOWN_ID ? undefined : `${ms}-${sub}`;
}

const MIN_SLOTS = 16;
const EMPTY = new Float64Array(0);

/**
 * A room's shared deliveries (seq, id) in seq order, in one circular buffer of triples
 * [seq, ms, sub]. It grows by doubling up to what it may hold and shrinks again when mostly
 * empty. `floorSeq`/`floorMs`/`floorSub` record the newest entry dropped without being stored
 * anywhere, which is still the answer for an offset between it and the oldest kept (see
 * `lastShared`); 0: none dropped.
 *
 * Only `Journal` changes a ring (it keeps the per-replica total and the eviction order).
 */
export class Ring {
  private buf: Float64Array = EMPTY;
  private head = 0;
  size = 0;
  floorSeq = 0;
  floorMs = 0;
  floorSub = 0;
  /** The newest seq the session store already has (see `SessionStore`). */
  storedSeq = 0;
  /** When the session store last wrote it, ms since the epoch. */
  storedAt = 0;
  /**
   * [seq, ms, sub] of the newest entry let go because the session store has it. What is read
   * from memory alone (a portable offset, made while the store cannot be reached) cannot be told
   * below it, and is this entry between it and the oldest kept.
   */
  stored: [number, number, number] | undefined;
  /** When the last entry was added, ms since the epoch. */
  touched = Date.now();
  /** Its place in the journal's eviction heap; -1 while empty. */
  heapAt = -1;

  private get slots(): number {
    return this.buf.length / 3;
  }

  private at(i: number): number {
    return ((this.head + i) % this.slots) * 3;
  }

  seqAt(i: number): number {
    return this.buf[this.at(i)]!;
  }

  idAt(i: number): MessageId | undefined {
    const k = this.at(i);
    return idOf(this.buf[k + 1]!, this.buf[k + 2]!);
  }

  /** Appends; the caller makes room first (`shift`) when it is at its capacity. */
  push(seq: number, [ms, sub]: IdParts, capacity: number): void {
    this.touched = Date.now();
    if (this.size === this.slots) this.resize(Math.min(capacity, Math.max(MIN_SLOTS, this.slots * 2)));
    const k = this.at(this.size);
    this.buf[k] = seq;
    this.buf[k + 1] = ms;
    this.buf[k + 2] = sub;
    this.size++;
  }

  /**
   * Drops the oldest entry; `floor`: it becomes the floor (it is stored nowhere else). Without,
   * the session store has it: it becomes `stored`, below which only the store can answer.
   */
  shift(floor: boolean): void {
    const k = this.at(0);
    const dropped: [number, number, number] = [this.buf[k]!, this.buf[k + 1]!, this.buf[k + 2]!];
    if (floor) [this.floorSeq, this.floorMs, this.floorSub] = dropped;
    else this.stored = dropped;
    this.head = (this.head + 1) % this.slots;
    this.size--;
    if (this.size === 0) {
      this.buf = EMPTY;
      this.head = 0;
    } else if (this.slots > MIN_SLOTS && this.size <= this.slots / 4) this.resize(Math.ceil(this.slots / 2));
  }

  /** Index of the newest entry with seq ≤ `seq`; -1 when none. */
  lastAtOrBefore(seq: number): number {
    let lo = 0;
    let hi = this.size - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.seqAt(mid) <= seq) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  private resize(slots: number): void {
    const next = new Float64Array(Math.max(slots, this.size) * 3);
    for (let i = 0; i < this.size; i++) next.set(this.buf.subarray(this.at(i), this.at(i) + 3), i * 3);
    this.buf = next;
    this.head = 0;
  }
}

/**
 * The newest shared delivery with `after < seq ≤ upTo`: its id; `null` when there was none;
 * `undefined` when it cannot be told. Entries dropped without being stored all lie at or below
 * the floor, so below it nothing can be told; at or above it the answer is the newer of the
 * floor and the newest entry kept.
 */
export function answerShared(found: { seq: number; id: MessageId | undefined } | undefined, floor: { seq: number; id: MessageId | undefined } | undefined, after: number, upTo: number): MessageId | null | undefined {
  const floorSeq = floor?.seq ?? 0;
  if (upTo < floorSeq) return undefined;
  if (found && found.seq > after && found.seq > floorSeq) return found.id;
  if (floor && floorSeq > after) return floor.id;
  return null;
}

/** `answerShared` over a ring in memory (entries let go to the session store count as dropped). */
export function lastShared(ring: Ring, after: number, upTo: number): MessageId | null | undefined {
  const i = ring.lastAtOrBefore(upTo);
  const found = i >= 0 ? { seq: ring.seqAt(i), id: ring.idAt(i) } : undefined;
  const [seq, ms, sub] = ring.stored && ring.stored[0] > ring.floorSeq ? ring.stored : [ring.floorSeq, ring.floorMs, ring.floorSub];
  const floor = seq > 0 ? { seq, id: idOf(ms, sub) } : undefined;
  return answerShared(found, floor, after, upTo);
}

/** Rings by the seq of their oldest entry: the top is where the replica's oldest entry is. */
export class RingHeap {
  private readonly rings: Ring[] = [];

  get top(): Ring | undefined {
    return this.rings[0];
  }

  add(ring: Ring): void {
    ring.heapAt = this.rings.length;
    this.rings.push(ring);
    this.up(ring.heapAt);
  }

  remove(ring: Ring): void {
    const i = ring.heapAt;
    if (i < 0) return;
    ring.heapAt = -1;
    const last = this.rings.pop()!;
    if (last === ring) return;
    this.rings[i] = last;
    last.heapAt = i;
    this.down(i);
    this.up(last.heapAt);
  }

  /** `ring`'s oldest entry went: it moves down, or out once empty. */
  changed(ring: Ring): void {
    if (ring.size === 0) this.remove(ring);
    else if (ring.heapAt >= 0) this.down(ring.heapAt);
  }

  private key(i: number): number {
    return this.rings[i]!.seqAt(0);
  }

  private swap(i: number, j: number): void {
    const a = this.rings[i]!;
    const b = this.rings[j]!;
    this.rings[i] = b;
    this.rings[j] = a;
    a.heapAt = j;
    b.heapAt = i;
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.key(parent) <= this.key(i)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < this.rings.length && this.key(l) < this.key(min)) min = l;
      if (r < this.rings.length && this.key(r) < this.key(min)) min = r;
      if (min === i) return;
      this.swap(i, min);
      i = min;
    }
  }
}
