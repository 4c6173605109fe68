import { createHash } from 'node:crypto';
import { HeraldError } from '../errors.js';
import type { MessageId } from '../protocol/events.js';
import type { RoomName } from '../protocol/rooms.js';
import { idParts, lastShared } from './ring.js';
import type { Journal, Track } from './journal.js';

/** A disconnected connection as it is kept for recovery. Never holds the private session id. */
export interface StoredSession {
  v: 2;
  /** The socket id, restored as is. */
  sid: string;
  /** The replica process whose offsets the client holds (`Journal.epoch`). */
  epoch: string;
  /** When it was disconnected, ms since the epoch. */
  at: number;
  /** The token's `sub`; null for an anonymous connection. A restore needs a token for the same user. */
  user: string | null;
  /** The token's `iat` (seconds) and `jti`, for revocations that reach waiting sessions. */
  issuedAt?: number;
  tokenId?: string;
  /**
   * For a connection with neither user nor `jti` (anonymous): a hash of its client address, so
   * that at most `perAddress` of its sessions wait at once (RECOVERY_SESSIONS_PER_ADDRESS).
   */
  addressKey?: string;
  /** Rooms without history (their messages cannot be replayed), besides its own rooms. */
  rooms: RoomName[];
  /** Rooms the backend subscribed it to (`POST /v1/subscribe`): kept even where its claims do not reach. */
  granted: RoomName[];
  /** Per history room, what it had been sent (see `Journal`). */
  history: Record<RoomName, Track>;
}

/** How a control command finds waiting sessions: by user, by socket id, or by the token's `jti`. */
export type WaitingKey = { readonly user: string } | { readonly client: string } | { readonly jti: string };

/**
 * A control command's change to one waiting session: the session as it is to be restored, null
 * to drop it, or undefined when the command does not concern it (it is then not counted).
 */
export type Amend = (session: StoredSession) => StoredSession | null | undefined;

/**
 * A control command as a restore from a portable offset (src/recovery/portable.ts) still has to
 * apply it: no session carried it, since none was saved. `disconnect` (the restore starts
 * afresh), or a room taken out (`unsubscribe`) or put in (`subscribe`).
 */
export type CommandMark = { readonly kind: 'disconnect' } | { readonly kind: 'unsubscribe' | 'subscribe'; readonly room: RoomName };

/**
 * Most marks kept under one user or connection at a time: past it, a new room's mark is kept as
 * a `disconnect` (the restore starts afresh, which undoes none of them), so a backend commanding
 * thousands of rooms for one user within the window costs one bounded hash.
 */
export const COMMAND_MARKS_PER_KEY = 256;

/** A mark as a field of its key's marks: `d`, `u:<room>`, `s:<room>`. */
export function markField(mark: CommandMark): string {
  return mark.kind === 'disconnect' ? 'd' : `${mark.kind === 'unsubscribe' ? 'u' : 's'}:${mark.room}`;
}

/** The mark a field stands for; undefined for one herald does not write. */
export function markOf(field: string): CommandMark | undefined {
  if (field === 'd') return { kind: 'disconnect' };
  if (field.startsWith('u:')) return { kind: 'unsubscribe', room: field.slice(2) };
  if (field.startsWith('s:')) return { kind: 'subscribe', room: field.slice(2) };
  return undefined;
}

/**
 * Where sessions wait for their client to come back: in memory on a single node, in Redis when
 * replicas share one, so a client may come back to any replica.
 *
 * Each waiting session is also found by its user, its socket id and its token's `jti`, for
 * control commands; at most `perKey` sessions wait under one user or `jti`, and `perAddress` under
 * one client address for anonymous connections (the oldest is dropped past it; 0: no bound).
 */
export interface SessionStore {
  /**
   * Keeps `session` for `ttlMs`, with what its rooms' shared deliveries need (from `journal`).
   * Resolves with how many older sessions it dropped to keep within `perKey`.
   */
  save(pid: string, session: StoredSession, journal: Journal, ttlMs: number): Promise<number>;
  /** Reads a session without taking it: a restore whose user is not checked yet. */
  peek(pid: string): Promise<StoredSession | undefined>;
  /** Takes a session out: of concurrent callers, one gets it. */
  take(pid: string): Promise<StoredSession | undefined>;
  /** `lastShared` for replica `epoch`'s room (see ring.ts). */
  shared(epoch: string, room: RoomName, after: number, upTo: number): Promise<MessageId | null | undefined>;
  /** Applies `amend` to the sessions waiting under `key`; adds the hash of each one it changed or dropped to `changed`. */
  amend(key: WaitingKey, amend: Amend, changed: Set<string>): Promise<void>;
  /**
   * Whether the replica process `epoch` (its journal's; the part of an offset before the dot)
   * may still save sessions: false once it is known gone, so that a restore does not wait for a
   * session that cannot come (every client of a killed replica). True where it cannot be told.
   */
  mayStillSave(epoch: string): Promise<boolean>;
  /**
   * Remembers for `ttlMs` that `mark` ran at `at` (ms) for a user or a connection (its socket
   * id), for restores from portable offsets: each field keeps its latest time, fields older than
   * `ttlMs` are dropped, at most `COMMAND_MARKS_PER_KEY` fields per key.
   */
  markCommand(key: WaitingKey, mark: CommandMark, at: number, ttlMs: number): Promise<void>;
  /** The marks kept under `key`, field (`markField`) → latest time. */
  commandMarks(key: WaitingKey): Promise<Map<string, number>>;
}

/** Adds `field` at `at` to `marks` as the stores keep them (see `SessionStore.markCommand`): fields older than `ttlMs` go first. */
export function addMark(marks: Map<string, number>, field: string, at: number, ttlMs: number): void {
  for (const [f, t] of marks) if (t < at - ttlMs) marks.delete(f);
  const kept = !marks.has(field) && marks.size >= COMMAND_MARKS_PER_KEY ? 'd' : field;
  if ((marks.get(kept) ?? -Infinity) < at) marks.set(kept, at);
}

/** A client address as an anonymous session keeps it: a hash (stores never hold the address). */
export function addressKey(address: string): string {
  return createHash('sha256').update(`address:${address}`).digest('base64url').slice(0, 16);
}

/** The session id is a secret: stores and logs only ever see a hash of it. */
export function sessionKey(pid: string): string {
  return createHash('sha256').update(pid).digest('base64url').slice(0, 24);
}

/** How many sessions may wait under a key of `waitingKeys` (0: no bound, not indexed). */
export function boundOf(key: string, perKey: number, perAddress: number): number {
  return key.startsWith('a:') ? perAddress : perKey;
}

/** The keys a session waits under (see `SessionStore`). */
export function waitingKeys(s: StoredSession): string[] {
  const keys = [waitingKey({ client: s.sid })];
  if (s.user !== null) keys.push(waitingKey({ user: s.user }));
  if (s.tokenId !== undefined) keys.push(waitingKey({ jti: s.tokenId }));
  if (s.user === null && s.tokenId === undefined && s.addressKey !== undefined) keys.push(`a:${s.addressKey}`);
  return keys;
}

export function waitingKey(key: WaitingKey): string {
  return 'user' in key ? `u:${key.user}` : 'client' in key ? `c:${key.client}` : `j:${key.jti}`;
}

/**
 * A stored session from its JSON; sessions of the previous format are converted. Anything else
 * throws `stored_data_invalid`: its client cannot be restored from it, and gets a fresh session.
 */
export function parseStored(raw: string): StoredSession {
  let s: (Omit<StoredSession, 'v'> & { v: number }) | undefined;
  try {
    s = JSON.parse(raw) as typeof s;
  } catch (err) {
    throw new HeraldError('stored_data_invalid', 'A stored recovery session is not JSON.', { cause: err });
  }
  if (!s || typeof s !== 'object' || typeof s.sid !== 'string' || typeof s.history !== 'object' || s.history === null || (s.v !== 1 && s.v !== 2)) {
    throw new HeraldError('stored_data_invalid', 'A stored recovery session is not one herald wrote (format 1 or 2).');
  }
  if (s.v === 2) return s as StoredSession;
  // Version 1 kept sends as [seq, id] pairs.
  for (const t of Object.values(s.history)) {
    const pairs = t.sends as unknown as [number, MessageId][];
    t.sends = pairs.flatMap(([seq, id]) => [seq, ...idParts(id)]);
  }
  return { ...s, v: 2 } as StoredSession;
}

/** Sessions on a single node; `perKey` as in `SessionStore`. */
export function createMemorySessionStore(journal: Journal, perKey: number, now: () => number = Date.now, perAddress = 0): SessionStore {
  const sessions = new Map<string, { session: StoredSession; until: number; keys: string[] }>();
  /** Waiting key → session hashes, oldest first. */
  const index = new Map<string, Set<string>>();
  const remove = (h: string) => {
    const kept = sessions.get(h);
    if (!kept) return undefined;
    sessions.delete(h);
    for (const k of kept.keys) {
      const hs = index.get(k);
      hs?.delete(h);
      if (hs?.size === 0) index.delete(k);
    }
    return kept;
  };
  /** Waiting key → its command marks (`markCommand`) and when they expire. */
  const marks = new Map<string, { fields: Map<string, number>; until: number }>();
  const sweep = setInterval(() => {
    const t = now();
    for (const [h, v] of sessions) if (v.until <= t) remove(h);
    for (const [k, v] of marks) if (v.until <= t) marks.delete(k);
  }, 10_000);
  sweep.unref();
  const live = (h: string) => {
    const kept = sessions.get(h);
    if (kept && kept.until <= now()) remove(h);
    return kept && kept.until > now() ? kept : undefined;
  };
  return {
    async save(pid, session, _journal, ttlMs) {
      const h = sessionKey(pid);
      remove(h);
      const keys = waitingKeys(session).filter((k) => boundOf(k, perKey, perAddress) > 0);
      sessions.set(h, { session, until: now() + ttlMs, keys });
      let dropped = 0;
      for (const k of keys) {
        let hs = index.get(k);
        if (!hs) index.set(k, (hs = new Set()));
        hs.add(h);
        for (const oldest of hs) {
          if (hs.size <= boundOf(k, perKey, perAddress)) break;
          if (remove(oldest)) dropped++;
        }
      }
      return dropped;
    },
    async peek(pid) {
      return live(sessionKey(pid))?.session;
    },
    async take(pid) {
      const h = sessionKey(pid);
      const kept = live(h);
      remove(h);
      return kept?.session;
    },
    async shared(epoch, room, after, upTo) {
      if (epoch !== journal.epoch) return undefined;
      const ring = journal.ring(room);
      return ring ? lastShared(ring, after, upTo) : null;
    },
    async amend(key, amend, changed) {
      for (const h of [...(index.get(waitingKey(key)) ?? [])]) {
        const kept = live(h);
        const next = kept && amend(kept.session);
        if (!kept || next === undefined) continue;
        if (next === null) remove(h);
        else kept.session = next;
        changed.add(h);
      }
    },
    // Sessions live in this process only: another process's cannot come here.
    async mayStillSave(epoch) {
      return epoch === journal.epoch;
    },
    async markCommand(key, mark, at, ttlMs) {
      const k = waitingKey(key);
      let kept = marks.get(k);
      if (!kept || kept.until <= now()) marks.set(k, (kept = { fields: new Map(), until: 0 }));
      addMark(kept.fields, markField(mark), at, ttlMs);
      kept.until = now() + ttlMs;
    },
    async commandMarks(key) {
      const kept = marks.get(waitingKey(key));
      return new Map(kept && kept.until > now() ? kept.fields : []);
    },
  };
}
