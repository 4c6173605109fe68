/**
 * The text of a Server-Sent Events stream (the WHATWG `text/event-stream` format): events of
 * `id:`, `event:` and one `data:` line of JSON, comment lines, and `retry:`. JSON never holds a raw
 * line break, and event names and stream ids are checked printable, so one `data:` line is always
 * the whole payload.
 */

/** The data of every event: `{"data": <payload>, "meta": {room, id, ts}}`, `meta` as Socket.IO clients get it (absent for herald's own events). */
export function eventFrame(event: string, data: unknown, meta?: unknown): string {
  const body = meta === undefined ? { data } : { data, meta };
  return `event: ${event}\ndata: ${JSON.stringify(body) ?? 'null'}\n\n`;
}

/** Sent once per room of a stream when it is in: the body of a Socket.IO `subscribe` ack, with the room. */
export const SUBSCRIBED_EVENT = 'herald:subscribed';

/** An `id:` line, written right before the event it belongs to. */
export function idLine(id: string): string {
  return `id: ${id}\n`;
}

/** A comment: ignored by EventSource, it keeps proxies from timing the stream out. */
export const HEARTBEAT = ':\n\n';

/** How long the client waits before reconnecting once the stream ends. */
export function retryLine(ms: number): string {
  return `retry: ${ms}\n\n`;
}
