import { isValidPattern } from '../../protocol/patterns.js';
import { integer, list, setting } from '../parse.js';

/** Slow consumers, metrics, status page, admin UI. */
export const OPERATIONS_SETTINGS = [
  setting({
    env: 'SLOW_CLIENT_MAX_BYTES',
    key: 'slowClientMaxBytes',
    doc: 'Outbound bytes one connection may have queued (uWS `maxBackpressure`; Engine.IO + `ws` buffers on the node transport and for long-polling). A connection whose queue passes it is closed at once (reason `slow_consumer` in the log, `herald_slow_consumer_disconnects_total`), never skipped: its client reconnects and recovers what it missed in history rooms.',
    defaultText: '1048576',
    parse: integer(16 * 1024, 1024 * 1024 * 1024, 1024 * 1024),
  }),
  setting({
    env: 'CONFLATE_ROOMS',
    key: 'conflateRooms',
    doc: 'Comma-separated room patterns (`*` matches anything) where only the newest message matters (a score, a price), with or without history, e.g. `scores:*, prices:*`. A connection with more than half of `SLOW_CLIENT_MAX_BYTES` queued is not written these rooms\' messages: it is held the newest one of each such room (an older one is replaced, `herald_conflated_messages_total`) and written it when its queue drains below that, instead of being closed for their traffic. Other rooms keep the slow-consumer rule. See docs/guides/live-scores.md.',
    defaultText: '(unset)',
    parse: (raw) =>
      Object.freeze(
        list(raw).map((pattern) => {
          if (!isValidPattern(pattern)) throw new Error(`has a bad pattern "${pattern}": use room characters and *`);
          return pattern;
        }),
      ),
  }),
  setting({
    env: 'METRICS_PORT',
    key: 'metricsPort',
    doc: 'Serve `GET /metrics` on this separate port, without auth (keep it off the public network). Unset: `/metrics` on the main port, behind `PUBLISH_KEYS` like the publish API.',
    defaultText: '(unset)',
    parse: (raw) => (raw === undefined || raw === '' ? undefined : integer(1, 65535, 0)(raw)),
  }),
  setting({
    env: 'STATUS_PAGE',
    key: 'statusPage',
    doc: 'Serve the status page at `/` and its data at `/v1/stats` (per-replica connections, rooms, rates, p99 fan-out latency; no auth). Its live-score demo needs `demo:live-score` public and anonymous clients allowed.',
    defaultText: '`true`; `false` when `NODE_ENV=production`',
    parse: (raw, env) => {
      if (raw === undefined || raw === '') return env.NODE_ENV !== 'production';
      if (raw !== 'true' && raw !== 'false') throw new Error(`must be true or false, got "${raw}"`);
      return raw === 'true';
    },
  }),
  setting({
    env: 'ADMIN_UI_USERNAME',
    key: 'adminUiUsername',
    doc: 'With `ADMIN_UI_PASSWORD_HASH`, enables `@socket.io/admin-ui` on the `/admin` namespace behind this login (add the UI\'s origin, e.g. `https://admin.socket.io`, to `CORS_ORIGINS`).',
    defaultText: '(unset)',
    parse: (raw, env) => {
      if (Boolean(raw) !== Boolean(env.ADMIN_UI_PASSWORD_HASH)) throw new Error('and ADMIN_UI_PASSWORD_HASH must be set together');
      return raw || undefined;
    },
  }),
  setting({
    env: 'ADMIN_UI_PASSWORD_HASH',
    key: 'adminUiPasswordHash',
    doc: 'bcrypt hash of the admin UI password (e.g. `node -e "console.log(require(\'bcryptjs\').hashSync(process.argv[1], 10))" <password>`).',
    defaultText: '(unset)',
    parse: (raw) => {
      if (!raw) return undefined;
      if (!/^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/.test(raw)) throw new Error('must be a bcrypt hash ($2a$10$...)');
      return raw;
    },
  }),
] as const;
