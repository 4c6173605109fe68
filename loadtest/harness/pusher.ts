/**
 * The Pusher Channels protocol (v7), as far as the harness needs it to load soketi the way it
 * loads herald: the WebSocket URL, `pusher:subscribe`, the frames a server sends, and the signed
 * HTTP API request that publishes an event (`POST /apps/:id/events`, HMAC-SHA256 query signature).
 * Pure functions, no I/O. Reference: pusher.com/docs/channels/library_auth_reference/rest-api.
 */
import { createHash, createHmac } from 'node:crypto';

/** An app on a Pusher-protocol server: its id (in API paths), public key (clients) and secret (signing). */
export interface PusherApp {
  id: string;
  key: string;
  secret: string;
}

/** The WebSocket URL a Pusher client opens for `app` on an http(s) base URL. */
export function pusherSocketUrl(base: string, app: PusherApp): string {
  return `${base.replace(/^http/, 'ws').replace(/\/$/, '')}/app/${encodeURIComponent(app.key)}?protocol=7&client=herald-harness&version=1.0.0&flash=false`;
}

/**
 * A harness room as a channel name: Pusher allows only `[A-Za-z0-9_\-=@,.;]`, and the harness's
 * rooms contain `:` (herald's room syntax). Both the client and the publisher map names this way,
 * so reports stay keyed by the harness's room.
 */
export const pusherChannel = (room: string): string => room.replace(/[^A-Za-z0-9_\-=@,.;]/g, '-');

export const subscribeFrame = (room: string): string => JSON.stringify({ event: 'pusher:subscribe', data: { channel: pusherChannel(room) } });

export const PUSHER_PONG = '{"event":"pusher:pong","data":{}}';

/** `{"event":"` — every frame a Pusher server sends starts so (JSON with `event` first). */
export const EVENT_PREFIX = Buffer.from('{"event":"');
/** …followed by this for the protocol's own events (`pusher:…`, `pusher_internal:…`). */
export const SYSTEM_PREFIX = Buffer.from('pusher');

/**
 * The request line's path and query and the body of a signed publish of `event` with `data`
 * (a string: Pusher carries event data as an opaque string) to `room`'s channel.
 */
export function signedPublish(app: PusherApp, room: string, event: string, data: string, now = Date.now()): { path: string; body: string } {
  const body = JSON.stringify({ name: event, channels: [pusherChannel(room)], data });
  const path = `/apps/${app.id}/events`;
  const params: Record<string, string> = {
    auth_key: app.key,
    auth_timestamp: String(Math.floor(now / 1000)),
    auth_version: '1.0',
    body_md5: createHash('md5').update(body).digest('hex'),
  };
  // Keys sorted and lower-case, values not URL-encoded in the signed string (they need none here).
  const query = Object.keys(params)
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
  const signature = createHmac('sha256', app.secret).update(`POST\n${path}\n${query}`).digest('hex');
  return { path: `${path}?${query}&auth_signature=${signature}`, body };
}
