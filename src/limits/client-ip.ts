import type { IncomingMessage } from 'node:http';

/**
 * How many proxies in front of herald add the address they received a request from to
 * `X-Forwarded-For` (TRUST_PROXY). 0: none, the peer address is the client.
 */
export type TrustedProxies = number;

/**
 * The address per-IP limits count for one request.
 *
 * Each trusted proxy appends the address it received the request from, so with `trustedProxies`
 * = n the client is the n-th entry from the right: the entry the outermost trusted proxy wrote.
 * Entries left of it were written by the client (or by untrusted hops) and are never used, so a
 * client cannot pick its own budget by sending an `X-Forwarded-For` of its own.
 *
 * With fewer entries than n (a request that passed fewer proxies), the leftmost entry counts, as
 * Express's `trust proxy` with a hop count does; without the header, or with n = 0, the peer.
 */
export function clientAddress(forwardedFor: string | readonly string[] | undefined, peer: string | undefined, trustedProxies: TrustedProxies): string {
  if (trustedProxies > 0 && forwardedFor !== undefined) {
    // Several header lines count as one list, in order (Node joins them with ", " itself).
    const hops = (typeof forwardedFor === 'string' ? forwardedFor : forwardedFor.join(','))
      .split(',')
      .map((h) => h.trim())
      .filter((h) => h.length > 0);
    const hop = hops[Math.max(0, hops.length - trustedProxies)];
    if (hop !== undefined) return hop;
  }
  return peer || 'unknown';
}

/** `clientAddress` of an Engine.IO handshake request (what `allowRequest` receives). */
export function clientIp(req: IncomingMessage, trustedProxies: TrustedProxies): string {
  // engine.io's uWS requests carry the peer in `connection`, Node's in `socket`.
  const peer = req.socket?.remoteAddress || (req as unknown as { connection?: { remoteAddress?: string } }).connection?.remoteAddress;
  return clientAddress(req.headers['x-forwarded-for'], peer, trustedProxies);
}
