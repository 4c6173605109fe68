import { createHmac } from 'node:crypto';

/** The header every webhook and proxy request carries when a secret is configured. */
export const SIGNATURE_HEADER = 'herald-signature';

/**
 * `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, as Stripe signs its webhooks:
 * the timestamp is inside the MAC, so a receiver that refuses old `t` also refuses replays.
 * docs/reference/backend-events.md shows the receiver's side in a few lines of Node.
 */
export function signatureOf(secret: string, body: string, nowSeconds = Math.floor(Date.now() / 1000)): string {
  return `t=${nowSeconds},v1=${hmac(secret, nowSeconds, body)}`;
}

function hmac(secret: string, t: number, body: string): string {
  return createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
}
