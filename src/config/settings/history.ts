import { LAST_MAX } from '../../protocol/events.js';
import { isValidPattern } from '../../protocol/patterns.js';
import { integer, list, setting } from '../parse.js';
import type { HistoryRule } from '../types.js';

/** History rooms (reliable fan-out). */
export const HISTORY_SETTINGS = [
  setting({
    env: 'HISTORY_ROOMS',
    key: 'historyRooms',
    doc: `Comma-separated room patterns (\`*\` matches anything) whose rooms keep a history for recovery, each optionally followed by its own \` size=<n>\` and \` ttl=<seconds>\`, and by \` last=<n>\` (1 to ${LAST_MAX}): a subscribe to such a room without \`since\` or \`last\` first receives its newest n messages (the current score, for \`last=1\`), and by \` delta\`: a subscriber that asks for it (\`subscribe {room, delta: "fossil"}\`) receives each message as a fossil delta against the previous one (docs/reference/deltas.md), e.g. \`scores:* size=200 ttl=120 last=1 delta, chat:*\`.`,
    defaultText: '(unset)',
    parse: (raw) => Object.freeze(list(raw).map(parseHistoryRule)),
  }),
  setting({
    env: 'HISTORY_SIZE',
    key: 'historySize',
    doc: 'Entries a history room keeps (trimmed approximately, as Redis `XADD MAXLEN ~` does), unless its pattern says otherwise.',
    defaultText: '1000',
    parse: integer(1, 1_000_000, 1000),
  }),
  setting({
    env: 'HISTORY_TTL_SECONDS',
    key: 'historyTtlSeconds',
    doc: 'Seconds a history room keeps its entries after its last publish, unless its pattern says otherwise.',
    defaultText: '600',
    parse: integer(1, 30 * 24 * 3600, 600),
  }),
  setting({
    env: 'HISTORY_NEW_ROOMS_PER_IP',
    key: 'historyNewRoomsPerIp',
    doc: 'New history rooms one client address may make a replica create in Redis (a stream of about 4.4 KB for a room without messages, kept for the room\'s TTL): a subscribe to a history room that has no stream yet takes one. A token bucket per address on each replica: a burst of this many, then this many a minute (so up to twice this within one minute, after a quiet spell). Past it the subscribe gets `too_many_new_rooms`; rooms that have messages subscribe as before. Bounds the Redis memory one address (and so one connection) can make each replica it reaches allocate: this × (the TTL in minutes + 1) × 4.4 KB (4.8 MB at the defaults). 0: subscribes never create rooms, only publishes do.',
    defaultText: '100',
    parse: integer(0, 1_000_000, 100),
  }),
  setting({
    env: 'CONNECTION_RECOVERY_SECONDS',
    key: 'connectionRecoverySeconds',
    doc: 'Socket.IO connection state recovery: how long the session of a dropped connection is kept (in Redis when replicas share one, in memory on a single node) so that a plain socket.io-client reconnecting within it, to any replica, gets its socket id, rooms and every history-room message it missed back, with `socket.recovered === true`. 0 turns it off.',
    defaultText: '120',
    parse: integer(0, 86_400, 120),
  }),
] as const;

/** One `HISTORY_ROOMS` entry: `<pattern>[ size=<n>][ ttl=<seconds>][ last=<n>][ delta]`. */
export function parseHistoryRule(entry: string): HistoryRule {
  const [pattern, ...options] = entry.split(/\s+/);
  if (!pattern || !isValidPattern(pattern)) {
    throw new Error(`has a bad pattern "${pattern}": use room characters and *`);
  }
  let size: number | undefined;
  let ttlSeconds: number | undefined;
  let last: number | undefined;
  let delta: boolean | undefined;
  for (const option of options) {
    if (option === 'delta') {
      delta = true;
      continue;
    }
    const m = /^(size|ttl|last)=(\d+)$/.exec(option);
    if (!m || Number(m[2]) < 1) throw new Error(`has a bad option "${option}" for ${pattern}: use size=<n>, ttl=<seconds>, last=<n> or delta`);
    const n = Number(m[2]);
    if (m[1] === 'size') size = n;
    else if (m[1] === 'ttl') ttlSeconds = n;
    else if (n > LAST_MAX) throw new Error(`has "${option}" for ${pattern}: last= is at most ${LAST_MAX}`);
    else last = n;
  }
  // Explicit in one entry, so a contradiction is a typo; against HISTORY_SIZE, the room simply sends what it keeps.
  if (last !== undefined && size !== undefined && last > size) throw new Error(`has last=${last} above size=${size} for ${pattern}: the room keeps only ${size}`);
  return Object.freeze({ pattern, size, ttlSeconds, last, ...(delta ? { delta } : {}) });
}
