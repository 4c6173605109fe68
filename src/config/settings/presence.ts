import { integer, list, setting } from '../parse.js';
import { isValidPattern } from '../../protocol/patterns.js';

/** Cluster-wide presence. */
export const PRESENCE_SETTINGS = [
  setting({
    env: 'PRESENCE_ROOMS',
    key: 'presenceRooms',
    doc: 'Comma-separated room patterns with cluster-wide presence (who is subscribed), each optionally followed by ` events` to send `herald:join`/`herald:leave` to the room, e.g. `chat:* events, lobby`.',
    defaultText: '(unset)',
    parse: (raw) =>
      Object.freeze(
        list(raw).map((entry) => {
          const [pattern, ...options] = entry.split(/\s+/);
          if (!pattern || !isValidPattern(pattern)) throw new Error(`has a bad pattern "${pattern}": use room characters and *`);
          if (options.some((o) => o !== 'events')) throw new Error(`has a bad option in "${entry}": the only option is events`);
          return Object.freeze({ pattern, events: options.includes('events') });
        }),
      ),
  }),
  setting({
    env: 'PRESENCE_TTL_SECONDS',
    key: 'presenceTtlSeconds',
    doc: 'A replica refreshes its presence heartbeat every third of this; when it stops (a crash, or a partition from Redis), its members drop out of presence within this many seconds, and another replica releases its rooms for the webhooks (`room.vacated`, `presence.left` a `WEBHOOK_VACATE_DELAY_SECONDS` later). A replica that comes back from a partition writes its members and rooms again within one heartbeat.',
    defaultText: '30',
    parse: integer(3, 3600, 30),
  }),
] as const;
