import { io as connect, type Socket } from 'socket.io-client';
import { onceWithin } from './wait.js';

/**
 * A client that follows rooms through reconnects, as applications write them with herald's client contract:
 * - `zero-code`: subscribes once, at its first connect, and relies on connection state recovery;
 *   on a reconnect that was not recovered it subscribes again (and would reload its state);
 * - `since`: on every connect, subscribes to each room with `since` = the last `meta.id` it
 *   received there (the explicit contract).
 * It never de-duplicates: tests see any duplicate herald sends.
 */
export interface Follower {
  readonly socket: Socket;
  readonly kind: 'zero-code' | 'since';
  readonly rooms: readonly string[];
  /** `meta.id` of every message received, per room, in arrival order. */
  readonly got: Record<string, string[]>;
  /** The replica of each connection, from `herald:hello`. */
  readonly replicas: string[];
  /** `socket.recovered` at each reconnect. */
  readonly recovered: boolean[];
  /** `herald:disconnect` bodies received. */
  readonly disconnects: { code: string }[];
  /** Every subscribe answer. */
  readonly acks: { ok: boolean; room?: string; recovered?: boolean }[];
  readonly connects: number;
  close(): void;
}

export async function follow(url: string, rooms: readonly string[], kind: Follower['kind'], event = 'm'): Promise<Follower> {
  const socket = connect(url, { transports: ['websocket'], forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 500 });
  const f = {
    socket,
    kind,
    rooms,
    got: Object.fromEntries(rooms.map((r) => [r, [] as string[]])),
    replicas: [] as string[],
    recovered: [] as boolean[],
    disconnects: [] as { code: string }[],
    acks: [] as Follower['acks'],
    connects: 0,
    close: () => socket.close(),
  };
  socket.on(event, (_data: unknown, meta: { room: string; id: string }) => f.got[meta.room]?.push(meta.id));
  socket.on('herald:hello', (hello: { replica: string }) => f.replicas.push(hello.replica));
  socket.on('herald:disconnect', (body: { code: string }) => f.disconnects.push(body));
  const subscribe = async (withSince: boolean) => {
    for (const room of rooms) {
      const last = f.got[room]!.at(-1);
      const arg = withSince && last ? { room, since: last } : room;
      f.acks.push((await socket.timeout(5000).emitWithAck('subscribe', arg)) as Follower['acks'][number]);
    }
  };
  let first: Promise<void> | undefined;
  socket.on('connect', () => {
    f.connects++;
    if (f.connects > 1) f.recovered.push(socket.recovered);
    if (kind === 'since') first ??= subscribe(true).catch(() => undefined);
    if (kind === 'since' && f.connects > 1) void subscribe(true).catch(() => undefined);
    if (kind === 'zero-code' && (f.connects === 1 || !socket.recovered)) {
      const done = subscribe(false).catch(() => undefined);
      first ??= done;
    }
  });
  await onceWithin(socket, 'connect', `connect to ${url}`);
  await first;
  for (const ack of f.acks) if (!ack.ok) throw new Error(`subscribe refused: ${JSON.stringify(ack)}`);
  return f;
}
