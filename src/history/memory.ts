import type { HistoryBackend, HistoryEntry, HistoryPolicy } from './types.js';

/** A log row: an entry, or the position marker a room gets before its first entry. */
interface Row {
  id: string;
  entry: HistoryEntry | undefined;
}

interface RoomLog {
  rows: Row[];
  expiresAt: number;
}

/** How often appends look for rooms past their TTL. */
const SWEEP_MS = 60_000;

/**
 * History for a single node without Redis. Same ids, ordering and `recovered` rules as the Redis
 * backend; entries live in this process and are gone when it exits.
 */
export function createMemoryHistory(now: () => number = Date.now): HistoryBackend {
  const rooms = new Map<string, RoomLog>();
  /** `<room> <dedupe key>` → id and expiry, like the Redis backend's dedupe keys. */
  const seen = new Map<string, { id: string; expiresAt: number }>();
  let handler: (entry: HistoryEntry) => void = () => {};
  let lastMs = 0;
  let seq = 0;

  const live = (room: string): RoomLog | undefined => {
    const log = rooms.get(room);
    if (log && log.expiresAt <= now()) {
      rooms.delete(room);
      return undefined;
    }
    return log;
  };

  const nextId = (): string => {
    const ts = now();
    // Monotonic like a Redis stream: the same millisecond gets the next sequence number.
    if (ts > lastMs) {
      lastMs = ts;
      seq = 0;
    } else {
      seq++;
    }
    return `${lastMs}-${seq}`;
  };
  let lastSweep = now();
  /** Rooms are dropped when read after their TTL; those nobody reads again, by this sweep. */
  const sweep = () => {
    if (now() - lastSweep < SWEEP_MS) return;
    lastSweep = now();
    for (const [room, log] of rooms) if (log.expiresAt <= lastSweep) rooms.delete(room);
  };
  const append = (room: string, entry: HistoryEntry | undefined, policy: HistoryPolicy): string => {
    sweep();
    const id = entry?.id ?? nextId();
    const log = live(room) ?? { rows: [], expiresAt: 0 };
    log.rows.push({ id, entry });
    if (log.rows.length > policy.size) log.rows.splice(0, log.rows.length - policy.size);
    log.expiresAt = now() + policy.ttlSeconds * 1000;
    rooms.set(room, log);
    return id;
  };
  const entriesOf = (rows: Row[]) => rows.flatMap((r) => (r.entry ? [r.entry] : []));

  return {
    async publish(room, event, data, policy: HistoryPolicy, dedupeKey) {
      const dedupe = dedupeKey === undefined ? undefined : `${room} ${dedupeKey}`;
      const prev = dedupe === undefined ? undefined : seen.get(dedupe);
      if (prev && prev.expiresAt > now()) {
        return { entry: { id: prev.id, room, event, data, ts: now() }, duplicate: true };
      }
      const entry: HistoryEntry = { id: nextId(), room, event, data, ts: lastMs };
      append(room, entry, policy);
      if (dedupe !== undefined) {
        seen.set(dedupe, { id: entry.id, expiresAt: now() + policy.ttlSeconds * 1000 });
        if (seen.size > 100_000) for (const [k, v] of seen) if (v.expiresAt <= now()) seen.delete(k);
      }
      handler(entry);
      return { entry, duplicate: false };
    },
    async read(room, since, limit) {
      const rows = live(room)?.rows ?? [];
      if (since === undefined) return { entries: entriesOf(rows).slice(0, limit), recovered: true };
      const at = rows.findIndex((r) => r.id === since);
      if (at === -1) return { entries: [], recovered: false };
      return { entries: entriesOf(rows.slice(at + 1)).slice(0, limit), recovered: true };
    },
    async latest(room, count) {
      return count < 1 ? [] : entriesOf(live(room)?.rows ?? []).slice(-count);
    },
    async position(room, policy, create = true) {
      const newest = live(room)?.rows.at(-1)?.id;
      if (newest !== undefined) return { id: newest, created: false };
      return create ? { id: append(room, undefined, policy), created: true } : undefined;
    },
    onEntry(h) {
      handler = h;
    },
    watch: () => Promise.resolve(),
    unwatch: () => {},
    // One process: delivery cannot break.
    onGap: () => {},
    async close() {
      rooms.clear();
    },
  };
}

