import type { RoomName } from '../protocol/rooms.js';

/** One connection's membership, as presence records it. */
export interface Member {
  /** Socket id, unique in the cluster. */
  readonly client: string;
  /** The token's `sub`; undefined for anonymous connections. */
  readonly user: string | undefined;
}

export interface RoomPresence {
  /** Connections subscribed to the room across the cluster. */
  readonly connections: number;
  /** Distinct user ids among them, sorted. */
  readonly users: string[];
}

/**
 * Cluster-wide room membership.
 *
 * Guarantees:
 * - eventually consistent: a change made on one replica is visible from every replica once its
 *   write reached the backend (immediately with Redis, in-process in memory);
 * - a replica that stops without cleaning up (crash, kill -9, partition) drops out of every room
 *   within the configured TTL; a replica restarting under the same replica id replaces its previous
 *   instance's members at once, so nobody is counted twice;
 * - after the backend comes back from an outage, each replica rewrites its own members.
 */
export interface PresenceBackend {
  add(room: RoomName, member: Member): Promise<void>;
  remove(room: RoomName, client: string): Promise<void>;
  get(room: RoomName): Promise<RoomPresence>;
  /** Writes every current member of this replica again (after a backend outage). */
  resync(members: Iterable<[RoomName, Member]>): Promise<void>;
  close(): Promise<void>;
}

export function summarize(members: Iterable<Member>): RoomPresence {
  let connections = 0;
  const users = new Set<string>();
  for (const m of members) {
    connections++;
    if (m.user !== undefined) users.add(m.user);
  }
  return { connections, users: [...users].sort() };
}
