import { integer, list, parseHistoryRule, setting } from '../parse.js';

/** History rooms (reliable fan-out). */
export const HISTORY_SETTINGS = [
  setting({
    env: 'HISTORY_ROOMS',
    key: 'historyRooms',
    doc: 'Comma-separated room patterns (`*` matches anything) whose rooms keep a history for recovery, each optionally followed by its own ` size=<n>` and ` ttl=<seconds>`, e.g. `scores:* size=200 ttl=120, chat:*`.',
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
] as const;
