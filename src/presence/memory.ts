import type { PresenceBackend, Member } from './types.js';
import { summarize } from './types.js';

/** Presence on a single node without Redis: the same API from this process's memory. */
export function createMemoryPresence(): PresenceBackend {
  const rooms = new Map<string, Map<string, Member>>();
  return {
    async add(room, member) {
      let m = rooms.get(room);
      if (!m) rooms.set(room, (m = new Map()));
      m.set(member.client, member);
    },
    async remove(room, client) {
      const m = rooms.get(room);
      m?.delete(client);
      if (m?.size === 0) rooms.delete(room);
    },
    async get(room) {
      return summarize(rooms.get(room)?.values() ?? []);
    },
    async resync() {},
    async close() {
      rooms.clear();
    },
  };
}
