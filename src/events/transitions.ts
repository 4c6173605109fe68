import type { RoomName } from '../protocol/rooms.js';

/**
 * What a transition is about: a room (`room.occupied` / `room.vacated`), or one user in a
 * presence room (`presence.joined` / `presence.left`).
 */
export interface Subject {
  readonly room: RoomName;
  readonly user?: string;
}

/** `start`: the subject went from nobody to somebody cluster-wide; `end`: back, after the delay. */
export type Announce = (kind: 'start' | 'end', subject: Subject) => void;

/**
 * Cluster-wide transitions of subjects, fed with this replica's local ones: `hold` when its first
 * local member arrives, `release` when its last one leaves. It calls `announce` so that, across
 * every replica:
 * - `start` is announced once when the first replica holds a subject nobody held;
 * - `end` is announced once, only after no replica held it for the whole delay; a hold inside the
 *   delay cancels it, and then neither `end` nor a second `start` is announced;
 * - a replica that dies without releasing (kill -9) has its subjects released by another replica
 *   once its heartbeat expired, so no `end` is left unannounced forever.
 * Exactly one replica announces each transition (the one whose atomic update made it).
 */
export interface Transitions {
  hold(subject: Subject): void;
  release(subject: Subject): void;
  /** Waits for writes in flight; stops timers and sweeps. */
  close(): Promise<void>;
}

/** A subject as one string: `<room>` or `<room> <user>` (neither contains a space). */
export function keyOf(subject: Subject): string {
  return subject.user === undefined ? subject.room : `${subject.room} ${subject.user}`;
}

export function subjectOf(key: string): Subject {
  const [room, user] = key.split(' ');
  return user === undefined ? { room: room! } : { room: room!, user };
}

/** A single node: this replica is the cluster, so its own transitions are the cluster's. */
export function createMemoryTransitions(delayMs: number, announce: Announce): Transitions {
  /** Held subjects (true), and released ones waiting out the delay (their timer). */
  const state = new Map<string, true | NodeJS.Timeout>();
  return {
    hold(subject) {
      const key = keyOf(subject);
      const s = state.get(key);
      state.set(key, true);
      if (s === undefined) announce('start', subject);
      else if (s !== true) clearTimeout(s);
    },
    release(subject) {
      const key = keyOf(subject);
      if (state.get(key) !== true) return;
      const timer = setTimeout(() => {
        state.delete(key);
        announce('end', subject);
      }, delayMs);
      timer.unref();
      state.set(key, timer);
    },
    // The node stops, so the cluster has nobody: what waits out its delay is vacated now rather than never.
    async close() {
      for (const [key, s] of state) {
        if (s === true) continue;
        clearTimeout(s);
        state.delete(key);
        announce('end', subjectOf(key));
      }
    },
  };
}
