/** Every webhook type, in the order docs/reference/backend-events.md lists them; `WEBHOOK_EVENTS` picks among these. */
export const WEBHOOK_TYPES = ['connection.opened', 'connection.closed', 'room.occupied', 'room.vacated', 'presence.joined', 'presence.left'] as const;
export type WebhookType = (typeof WEBHOOK_TYPES)[number];

/** The body of every webhook request. `id` is the same on every retry of one event. */
export interface WebhookEvent {
  readonly id: string;
  readonly type: WebhookType;
  /** When herald saw it happen, ms since the epoch. */
  readonly ts: number;
  readonly data: Readonly<Record<string, unknown>>;
}
