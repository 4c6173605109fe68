import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header every webhook and proxy request carries when a secret is configured. */
export const SIGNATURE_HEADER = 'herald-signature';

/**
 * `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, as Stripe signs its webhooks:
 * the timestamp is inside the MAC, so a receiver that refuses old `t` also refuses replays.
 */
export function signatureOf(secret: string, body: string, nowSeconds = Math.floor(Date.now() / 1000)): string {
  return `t=${nowSeconds},v1=${hmac(secret, nowSeconds, body)}`;
}

/**
 * What a receiver does (README shows the same in a few lines): true when `header` is a signature
 * of `body` with `secret` made at most `toleranceSeconds` ago (or ahead, for clock differences).
 */
export function verifySignature(secret: string, header: string | undefined, body: string, toleranceSeconds = 300, nowSeconds = Math.floor(Date.now() / 1000)): boolean {
  const parts = new Map((header ?? '').split(',').map((p) => p.split('=', 2) as [string, string]));
  const t = Number(parts.get('t'));
  const given = Buffer.from(parts.get('v1') ?? '', 'hex');
  if (!Number.isInteger(t) || Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const expected = Buffer.from(hmac(secret, t, body), 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function hmac(secret: string, t: number, body: string): string {
  return createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
}
