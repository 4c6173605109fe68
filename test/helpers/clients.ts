import { io as connect, type Socket } from 'socket.io-client';
import type { MessageMeta } from '../../src/protocol/events.js';
import { onceWithin, waitFor } from './wait.js';

/** `upgrade`: long-polling first, then the upgrade to WebSocket, as browsers connect by default. */
export type ClientTransport = 'websocket' | 'polling' | 'upgrade';

export interface Received {
  event: string;
  data: unknown;
  meta: MessageMeta;
}

/** A socket.io-client that records every event it receives. */
export interface TestClient {
  readonly socket: Socket;
  /** Published messages received (herald's own `herald:*` events excluded). */
  readonly received: Received[];
  /** The replica this client landed on, from `herald:hello`. */
  readonly replica: string;
  subscribe(arg: unknown): Promise<unknown>;
  unsubscribe(arg: unknown): Promise<unknown>;
  /** Resolves when a message with `predicate` has been received. */
  waitFor(what: string, predicate: (r: Received) => boolean): Promise<Received>;
  close(): void;
}

export async function connectClient(
  url: string,
  opts: {
    transport?: ClientTransport;
    reconnection?: boolean;
    cookies?: boolean;
    /** Handshake `auth` payload, e.g. `{token}`. */
    auth?: Record<string, unknown>;
    extraHeaders?: Record<string, string>;
    /** Socket.IO's path, when the gateway has a SOCKETIO_PATH. */
    path?: string;
  } = {},
): Promise<TestClient> {
  const socket = connect(url, {
    path: opts.path,
    auth: opts.auth,
    extraHeaders: opts.extraHeaders,
    transports: opts.transport === 'upgrade' ? ['polling', 'websocket'] : [opts.transport ?? 'websocket'],
    reconnection: opts.reconnection ?? false,
    forceNew: true,
    // In Node, socket.io-client keeps a cookie jar only with withCredentials, as a browser would.
    withCredentials: opts.cookies ?? false,
  });
  const received: Received[] = [];
  let replica = '';
  socket.onAny((event: string, data: unknown, meta: MessageMeta) => {
    if (event === 'herald:hello') replica = (data as { replica: string }).replica;
    else received.push({ event, data, meta });
  });
  const outcome = await Promise.race([
    onceWithin(socket, 'connect', `connect to ${url}`).then(() => null),
    onceWithin<[Error]>(socket, 'connect_error', 'connect_error').then(([err]) => err),
  ]);
  if (outcome) {
    socket.close();
    throw outcome;
  }
  await waitFor('herald:hello', () => replica);
  return {
    socket,
    received,
    get replica() {
      return replica;
    },
    subscribe: (arg) => socket.timeout(5000).emitWithAck('subscribe', arg),
    unsubscribe: (arg) => socket.timeout(5000).emitWithAck('unsubscribe', arg),
    waitFor: (what, predicate) => waitFor(what, () => received.find(predicate)),
    close: () => socket.close(),
  };
}

export interface PublishResponse {
  status: number;
  body: any;
}

/** POSTs `body` (an object, or a raw string sent as is) to `/v1/publish`. */
export async function publish(url: string, body: unknown, key?: string): Promise<PublishResponse> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await fetch(`${url}/v1/publish`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

export async function getJson(url: string): Promise<PublishResponse> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

/**
 * A client as a live-feed app writes one: on every (re)connect it subscribes to `room` with
 * `since` = the last `meta.id` it received there, or else the `offset` of its last ack. It never
 * de-duplicates, so tests see any duplicate herald sends. `acks` records every subscribe answer.
 */
export interface RecoveringClient extends TestClient {
  readonly acks: unknown[];
}

export async function connectRecovering(url: string, room: string): Promise<RecoveringClient> {
  const c = await connectClient(url, { reconnection: true });
  const acks: unknown[] = [];
  const subscribe = async () => {
    const last =
      c.received.filter((r) => r.meta?.room === room).at(-1)?.meta.id ??
      (acks.findLast((a) => (a as { offset?: string }).offset) as { offset?: string } | undefined)?.offset;
    acks.push(await c.subscribe(last ? { room, since: last } : room));
  };
  await subscribe();
  c.socket.on('connect', () => void subscribe().catch(() => {}));
  return Object.assign(c, { acks });
}
