import type { HistoryBackend, HistoryEntry, HistoryPolicy } from './types.js';

interface RoomLog {
  entries: HistoryEntry[];
  expiresAt: number;
}

/**
 * History for a single node without Redis. Same ids, ordering and `recovered` rules as the Redis
 * backend; entries live in this process and are gone when it exits.
 */
export function createMemoryHistory(now: () => number = Date.now): HistoryBackend {
  const rooms = new Map<string, RoomLog>();
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

  return {
    async publish(room, event, data, policy: HistoryPolicy) {
      const ts = now();
      // Monotonic like a Redis stream: the same millisecond gets the next sequence number.
      if (ts > lastMs) {
        lastMs = ts;
        seq = 0;
      } else {
        seq++;
      }
      const entry: HistoryEntry = { id: `${lastMs}-${seq}`, room, event, data, ts };
      const log = live(room) ?? { entries: [], expiresAt: 0 };
      log.entries.push(entry);
      if (log.entries.length > policy.size) log.entries.splice(0, log.entries.length - policy.size);
      log.expiresAt = ts + policy.ttlSeconds * 1000;
      rooms.set(room, log);
      handler(entry);
      return entry;
    },
    async read(room, since, limit) {
      const entries = live(room)?.entries ?? [];
      if (since === undefined) return { entries: entries.slice(0, limit), recovered: true };
      const at = entries.findIndex((e) => e.id === since);
      if (at === -1) return { entries: [], recovered: false };
      return { entries: entries.slice(at + 1, at + 1 + limit), recovered: true };
    },
    onEntry(h) {
      handler = h;
    },
    async close() {
      rooms.clear();
    },
  };
}

