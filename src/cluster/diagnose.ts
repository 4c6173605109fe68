/** The setting a Redis target comes from, and where it points (no credentials), for the log (`nameOf`, src/cluster/redis.ts). */
export interface TargetName {
  readonly setting: 'REDIS_URL' | 'REDIS_CLUSTER_NODES' | 'REDIS_SENTINELS';
  /** `host:port`, comma-separated for several. */
  readonly server: string;
  /** `rediss://`: a TLS connection is expected. */
  readonly tls: boolean;
}

/** Why a connection to Redis failed, as an operator would fix it. */
export type Reason = 'refused' | 'dns' | 'unreachable' | 'timed_out' | 'no_answer' | 'not_redis' | 'auth_failed' | 'tls' | 'closed' | 'no_sentinel' | 'no_cluster' | 'other';

const HINTS: Record<Reason, string> = {
  refused: 'connection refused: nothing listens there (is Redis running, are the host and port right?)',
  dns: 'the host name does not resolve',
  unreachable: 'no route to the host',
  timed_out: 'the connection was not accepted within REDIS_TIMEOUT_SECONDS (packets dropped by a firewall, or a host that is down)',
  no_answer: 'connected, but nothing answered within REDIS_TIMEOUT_SECONDS: is it Redis?',
  not_redis: 'something answered that does not speak Redis (an HTTP server?): check the port',
  auth_failed: 'Redis refused the credentials: check the user and password (in the URL; REDIS_PASSWORD behind Sentinel)',
  tls: 'the TLS handshake failed (a certificate this process does not trust? NODE_EXTRA_CA_CERTS)',
  closed: 'the server closed the connection',
  no_sentinel: 'no Sentinel of REDIS_SENTINELS answered for REDIS_SENTINEL_NAME (see the sentinel connection errors)',
  // ioredis's Cluster reports its nodes' socket errors only as "Connection is closed.".
  no_cluster: 'no node of REDIS_CLUSTER_NODES answered CLUSTER SLOTS (not running, wrong host or port, not a cluster, or it wants TLS or a password)',
  other: 'the connection failed',
};

/** TLS mismatches look like other failures: a hint that names the likely one. */
const TLS_HINTS: Partial<Record<Reason, { tls: string; plain: string }>> = {
  timed_out: { tls: 'rediss:// asks for TLS: a server without TLS never answers the handshake (use redis://?)', plain: '' },
  closed: { tls: '', plain: 'a server that expects TLS closes a plain connection (use rediss://?)' },
};

const TLS_CODES = /^(ERR_SSL|ERR_TLS|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|CERT_)/;

/** The reason of a connection error from ioredis or the socket under it; `other` for one that says only that it failed. */
export function reasonOf(err: Error): Reason {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const m = err.message;
  if (code === 'ECONNREFUSED' || /ECONNREFUSED/.test(m)) return 'refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || /ENOTFOUND|EAI_AGAIN/.test(m)) return 'dns';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || /EHOSTUNREACH|ENETUNREACH/.test(m)) return 'unreachable';
  if (TLS_CODES.test(code) || /certificate|SSL routines|TLS/i.test(m)) return 'tls';
  if (/^(NOAUTH|WRONGPASS|NOPERM)|invalid password|invalid username-password/.test(m.replace(/^Ready check failed: /, ''))) return 'auth_failed';
  if (err.name === 'ParserError' || /^Protocol error/.test(m)) return 'not_redis';
  if (code === 'ETIMEDOUT' || /connect ETIMEDOUT/.test(m)) return 'timed_out';
  if (/^Socket timeout|Command timed out/.test(m)) return 'no_answer';
  if (code === 'ECONNRESET' || code === 'EPIPE' || /ECONNRESET|EPIPE/.test(m)) return 'closed';
  if (/All sentinels are unreachable|None of the sentinels/.test(m)) return 'no_sentinel';
  if (/Failed to refresh slots cache/.test(m)) return 'no_cluster';
  // "Connection is closed.", "Failed to refresh slots cache.": the consequence, not the cause.
  return 'other';
}

/** The reason and a hint for the log, with the TLS mismatch a reason suggests. */
export function diagnose(err: Error, target: TargetName): { reason: Reason; hint: string } {
  const reason = reasonOf(err);
  const tls = TLS_HINTS[reason]?.[target.tls ? 'tls' : 'plain'];
  return { reason, hint: tls ? `${HINTS[reason]}; ${tls}` : HINTS[reason] };
}
