import { SETTINGS } from './schema.js';
import type { Env } from './types.js';

/** An environment variable that looks like one of herald's settings but is not one. */
export interface UnknownSetting {
  /** The variable's name (never its value, which may be a secret). */
  readonly name: string;
  /** The setting it is probably a typo of, when one is close enough. */
  readonly didYouMean: string | undefined;
  /** What to tell the operator. */
  readonly message: string;
}

/**
 * Name prefixes only herald's settings use in its environment: a variable starting with one is
 * meant for herald even when it is far from every setting (`REDIS_HOST`). Words that other
 * programs put in the environment too (`HTTP_`, `LOG_`, `NODE_`, `CLIENT_`, `PUBLIC_`, `HERALD_`,
 * which compose.yaml reads on the host) are left to the edit distance alone.
 */
export const HERALD_PREFIXES = [
  'ADMIN_UI_', 'AMQP_', 'BROADCAST_', 'CONNECT_', 'CONNECTION_', 'CONTROL_', 'CORS_', 'DRAIN_', 'HISTORY_',
  'INGEST_', 'JWKS_', 'JWT_', 'PING_', 'PRESENCE_', 'PROXY_', 'PUBLISH_', 'REDIS_', 'REVOCATION_',
  'SLOW_CLIENT_', 'SOCKETIO_', 'SUBSCRIBE_PROXY_', 'WEBHOOK_', 'WS_',
] as const;

/**
 * Variables Kubernetes (service links) and Docker links set for every service in reach: a Service
 * named `redis` gives each pod `REDIS_PORT=tcp://…`, `REDIS_SERVICE_HOST`, `REDIS_PORT_6379_TCP_ADDR`.
 */
function isServiceLink(name: string, value: string | undefined): boolean {
  if (/_SERVICE_(HOST|PORT)(_[A-Z0-9_]+)?$/.test(name)) return true;
  if (/_PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?$/.test(name)) return true;
  return /_PORT$/.test(name) && /^(tcp|udp|sctp):\/\//.test(value ?? '');
}

const KNOWN = new Set<string>(SETTINGS.map((s) => s.env));

/**
 * Variables of `env` that are not herald settings but look like one: a herald prefix, or a name
 * within a typo of a setting (one edit for names under 8 characters, two from 8 on, compared
 * without case), so `PUBLISH_KEY`, `REDIS_URI`, `HISTORY_ROOM` and `redis_url` are caught while
 * PATH, HOME, NODE_OPTIONS and npm's `npm_*` are not.
 */
export function unknownSettings(env: Env): UnknownSetting[] {
  const found: UnknownSetting[] = [];
  for (const name of Object.keys(env).sort()) {
    if (KNOWN.has(name) || name.startsWith('npm_') || isServiceLink(name, env[name])) continue;
    const upper = name.toUpperCase();
    const near = nearest(upper);
    const close = near !== undefined && near.distance <= (upper.length < 8 ? 1 : 2);
    const prefix = HERALD_PREFIXES.find((p) => upper.startsWith(p));
    if (!close && prefix === undefined) continue;
    const didYouMean = close ? near.name : undefined;
    const hint = didYouMean
      ? `did you mean ${didYouMean}?`
      : `herald's ${prefix} settings are ${[...KNOWN].filter((k) => k.startsWith(prefix!)).join(', ') || 'none'}`;
    found.push({ name, didYouMean, message: `${name} is not a herald setting and is ignored: ${hint}` });
  }
  return found;
}

function nearest(name: string): { name: string; distance: number } | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const known of KNOWN) {
    const distance = editDistance(name, known);
    if (best === undefined || distance < best.distance) best = { name: known, distance };
  }
  return best;
}

/** Levenshtein distance with adjacent transpositions counted as one edit (`PROT` → `PORT`). */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) rows.push([i, ...Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i]!;
    const prev = rows[i - 1]!;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, rows[i - 2]![j - 2]! + 1);
    }
  }
  return rows[a.length]![b.length]!;
}
