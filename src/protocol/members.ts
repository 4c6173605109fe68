/**
 * Members of the adapter's rooms that are not Socket.IO sockets: Server-Sent Events streams
 * (src/sse/hub.ts). Presence and the webhooks read who they are through this, as they read a
 * socket's identity.
 */
export interface OtherMembers {
  /** The user on connection `client` (undefined: anonymous, or not one of these). */
  userOf(client: string): string | undefined;
  /** Calls `fn` for every connection opened from now on, with its transport (`sse`). */
  onOpened(fn: (c: { client: string; user: string | undefined; transport: string }) => void): void;
  /** Calls `fn` for every connection closed, with why. */
  onClosed(fn: (c: { client: string; user: string | undefined; transport: string; reason: string }) => void): void;
}

/** No other members. */
export const NO_OTHER_MEMBERS: OtherMembers = { userOf: () => undefined, onOpened: () => undefined, onClosed: () => undefined };

