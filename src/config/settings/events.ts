import { isValidPattern } from '../../protocol/patterns.js';
import { WEBHOOK_TYPES, type WebhookType } from '../../protocol/webhooks.js';
import { integer, list, setting } from '../parse.js';

/** An http(s) URL of the backend, or undefined when unset. */
function backendUrl(raw: string | undefined): URL | undefined {
  if (raw === undefined || raw === '') return undefined;
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new Error(`must be an http:// or https:// URL, got "${raw}"`);
  return url;
}

/** Webhooks to the backend, and the proxies that let it decide access. */
export const EVENTS_SETTINGS = [
  setting({
    env: 'WEBHOOK_URL',
    key: 'webhookUrl',
    doc: 'Backend URL herald `POST`s webhooks to (`{id, type, ts, data}`, signed with `WEBHOOK_SECRET` in `herald-signature`): connections opened and closed, rooms occupied and vacated, presence users joined and left (see Webhooks). Unset: no webhooks.',
    defaultText: '(unset)',
    parse: backendUrl,
  }),
  setting({
    env: 'WEBHOOK_SECRET',
    key: 'webhookSecret',
    doc: 'Secret (at least 16 characters) that signs every webhook, and every proxy request when set: `herald-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. Required with `WEBHOOK_URL`.',
    defaultText: '(unset)',
    parse: (raw, env) => {
      if (!raw) {
        if (env.WEBHOOK_URL) throw new Error('must be set with WEBHOOK_URL, so that the receiver can check that requests come from herald');
        return undefined;
      }
      if (raw.length < 16) throw new Error(`must be at least 16 characters long (got ${raw.length}); use a random string, e.g. openssl rand -hex 32`);
      return raw;
    },
  }),
  setting({
    env: 'WEBHOOK_EVENTS',
    key: 'webhookEvents',
    doc: `Comma-separated webhook types to send: ${WEBHOOK_TYPES.map((t) => `\`${t}\``).join(', ')}. Unset: all.`,
    defaultText: 'all',
    parse: (raw) => {
      const types = raw === undefined || raw.trim() === '' ? [...WEBHOOK_TYPES] : list(raw);
      const bad = types.filter((t) => !(WEBHOOK_TYPES as readonly string[]).includes(t));
      if (bad.length > 0) throw new Error(`has unknown type(s) ${bad.join(', ')}: use ${WEBHOOK_TYPES.join(', ')}`);
      return Object.freeze(types as WebhookType[]);
    },
  }),
  setting({
    env: 'WEBHOOK_VACATE_DELAY_SECONDS',
    key: 'webhookVacateDelaySeconds',
    doc: 'A room is vacated (`room.vacated`), and a user has left a presence room (`presence.left`), only after nobody was there on any replica for this many seconds; a reconnect or re-subscribe inside it sends nothing.',
    defaultText: '3',
    parse: integer(0, 3600, 3),
  }),
  setting({
    env: 'WEBHOOK_RETRY_SECONDS',
    key: 'webhookRetrySeconds',
    doc: 'A webhook answered with anything but 2xx, with more than 64 KiB, or not within 5 s, is retried with backoff (1 s, 2 s, 4 s, … at most 60 s) and the same `id` for this many seconds after its first attempt, then dropped and logged.',
    defaultText: '300',
    parse: integer(0, 86_400, 300),
  }),
  setting({
    env: 'WEBHOOK_QUEUE_SIZE',
    key: 'webhookQueueSize',
    doc: 'Webhooks one replica holds (waiting, in flight or waiting for a retry); past it new ones are dropped, counted (`herald_webhooks_dropped_total{reason="queue_full"}`) and logged.',
    defaultText: '10000',
    parse: integer(1, 1_000_000, 10_000),
  }),
  setting({
    env: 'SUBSCRIBE_PROXY_URL',
    key: 'subscribeProxyUrl',
    doc: 'Backend URL asked about a subscribe to a `PROXY_ROOMS` room that neither `PUBLIC_ROOMS` nor the token\'s `rooms` allows: `POST {user, client, room, claims}`, answered `{allow: true}` or `{allow: false, code?}`. No valid answer within `PROXY_TIMEOUT_MS`: refused with `unavailable`.',
    defaultText: '(unset)',
    parse: backendUrl,
  }),
  setting({
    env: 'PROXY_ROOMS',
    key: 'proxyRooms',
    doc: 'Comma-separated room patterns `SUBSCRIBE_PROXY_URL` decides (`user:` rooms never: only their user may subscribe).',
    defaultText: '`*` with `SUBSCRIBE_PROXY_URL`',
    parse: (raw, env) => {
      const patterns = raw === undefined ? (env.SUBSCRIBE_PROXY_URL ? ['*'] : []) : list(raw);
      const bad = patterns.filter((p) => !isValidPattern(p));
      if (bad.length > 0) throw new Error(`has bad pattern(s) ${bad.join(', ')}: use room characters and *`);
      if (patterns.length > 0 && !env.SUBSCRIBE_PROXY_URL) throw new Error('needs SUBSCRIBE_PROXY_URL: it names the rooms that backend decides');
      return Object.freeze(patterns);
    },
  }),
  setting({
    env: 'CONNECT_PROXY_URL',
    key: 'connectProxyUrl',
    doc: 'Backend URL asked about every handshake without a JWT (apps with session cookies): `POST {headers: {cookie, authorization, origin}, auth, address}`. `200 {user, rooms?, publish?, expiresAt?}` admits it as that user, as a token with those claims would (`expiresAt` in seconds, like `exp`); 401 or 403 refuses it with `unauthorized`; anything else, or no answer within `PROXY_TIMEOUT_MS`, with `unavailable`.',
    defaultText: '(unset)',
    parse: backendUrl,
  }),
  setting({
    env: 'PROXY_TIMEOUT_MS',
    key: 'proxyTimeoutMs',
    doc: 'Milliseconds the subscribe and connect proxies wait for an answer; then the subscribe or connection is refused with `unavailable` (fail closed).',
    defaultText: '2000',
    parse: integer(50, 60_000, 2000),
  }),
  setting({
    env: 'PROXY_CACHE_SECONDS',
    key: 'proxyCacheSeconds',
    doc: 'Seconds a replica remembers the subscribe proxy\'s `allow` for a user and room (refusals are never cached). 0: ask every time.',
    defaultText: '0',
    parse: integer(0, 3600, 0),
  }),
  setting({
    env: 'PROXY_MAX_CONCURRENCY',
    key: 'proxyMaxConcurrency',
    doc: 'Proxy requests one replica may have waiting for the backend at once (subscribe and connect together); past it a subscribe or connection is refused at once with `backend_busy`, so a slow backend never piles up requests.',
    defaultText: '100',
    parse: integer(1, 100_000, 100),
  }),
] as const;
