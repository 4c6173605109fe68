import { integer, setting } from '../parse.js';

/** Bounds of connection state recovery (CONNECTION_RECOVERY_SECONDS). */
export const RECOVERY_SETTINGS = [
  setting({
    env: 'RECOVERY_JOURNAL_ROOM_ENTRIES',
    key: 'recoveryJournalRoomEntries',
    doc: 'Recovery journal: live history-room deliveries a replica remembers per room (24 bytes each, whatever the message size), to tell a returning client which message it had. Past it the oldest go first; a client whose offset is older gets `recovered: false` and that room is not restored (it subscribes again), never a wrong position.',
    defaultText: '20000',
    parse: integer(10, 1_000_000, 20_000),
  }),
  setting({
    env: 'RECOVERY_JOURNAL_ENTRIES',
    key: 'recoveryJournalEntries',
    doc: 'Recovery journal: the same, for all rooms of a replica together (the default is about 24 MB). Past it the replica\'s oldest entries go first, whatever their room.',
    defaultText: '1000000',
    parse: integer(100, 100_000_000, 1_000_000),
  }),
  setting({
    env: 'RECOVERY_SOCKET_SENDS',
    key: 'recoverySocketSends',
    doc: 'Recovery journal: history messages sent to one connection alone (its catch-ups after `since`, `last` or a recovery) remembered across its rooms, and kept in its saved session. Past it the oldest go first; a client that dropped in the middle of a longer catch-up gets `recovered: false` and that room is not restored (it subscribes again).',
    defaultText: '256',
    parse: integer(8, 65_536, 256),
  }),
  setting({
    env: 'RECOVERY_RESTORES_PER_IP',
    key: 'recoveryRestoresPerIp',
    doc: 'Session restores (a CONNECT carrying a recovery `pid`) one client address may start per minute, as a token bucket holding this many; each Engine.IO connection may start one. Past it the client gets a fresh session (`recovered: false`, `herald_session_recovery_total{outcome="rate_limited"}`) and the saved session stays for its owner.',
    defaultText: '600',
    parse: integer(1, 1_000_000, 600),
  }),
  setting({
    env: 'RECOVERY_SESSIONS_PER_USER',
    key: 'recoverySessionsPerUser',
    doc: 'Saved sessions that may wait at once for one user (token `sub`) or one token (`jti`). Past it the oldest is dropped (`herald_session_recovery_total{outcome="evicted"}`); its client starts afresh.',
    defaultText: '100',
    parse: integer(1, 100_000, 100),
  }),
  setting({
    env: 'RECOVERY_SESSIONS_PER_ADDRESS',
    key: 'recoverySessionsPerAddress',
    doc: 'Saved sessions of anonymous connections (no `sub`, no `jti`) that may wait at once per client address (as TRUST_PROXY tells it; saves within the window count, restored ones too). Past it the oldest is dropped, as above. Many viewers behind one NAT share an address: size it for the most anonymous clients one address may drop at once (a drain). 0: no bound per address (the connect rate per address still limits them).',
    defaultText: '1000',
    parse: integer(0, 1_000_000, 1000),
  }),
] as const;
