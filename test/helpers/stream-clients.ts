import assert from 'node:assert/strict';
import { io as connect, type Socket } from 'socket.io-client';
import type { MessageMeta } from '../../src/protocol/events.js';

/**
 * How a client keeps its place in a room's stream:
 * - `builtin`: The client contract's zero-code client. It subscribes once, at its first connect, and relies on
 *   Socket.IO's connection state recovery from then on.
 * - `explicit`: The client contract's `since` client. On every connect, recovered or not, it subscribes to each
 *   history room with `since` = the last `meta.id` it received there (or its last ack's `offset`),
 *   and to each other room by name.
 */
export type Contract = 'builtin' | 'explicit';

export interface StreamClient {
  readonly socket: Socket;
  /** `meta.id` of every message received, per room, in arrival order (never de-duplicated). */
  readonly got: Record<string, string[]>;
  /** Connects so far (the first included). */
  connects: number;
  /** `socket.recovered` at each reconnect. */
  readonly recovered: boolean[];
  /** Every subscribe ack of a history room, with the `since` it sent. */
  readonly acks: { room: string; since: string | undefined; ack: { ok?: boolean; recovered?: boolean; offset?: string } }[];
  /** `herald:reset` bodies received. */
  readonly resets: unknown[];
  /** The replica of each connect (from `herald:hello`). */
  readonly replicas: string[];
}

export interface StreamClientOptions {
  contract: Contract;
  /** Rooms with history, checked message by message. */
  history: readonly string[];
  /** Rooms without history the session also has (they make a restore partial). */
  plain?: readonly string[];
  transport?: 'websocket' | 'polling';
  /** The published event name to record. @default "m" */
  event?: string;
}

/** Connects a reconnecting socket.io-client that records its rooms' streams; resolves once its first subscribes are acknowledged. */
export async function streamClient(url: string, opts: StreamClientOptions): Promise<StreamClient> {
  const socket = connect(url, {
    transports: [opts.transport ?? 'websocket'],
    forceNew: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 300,
  });
  const got: Record<string, string[]> = {};
  for (const room of [...opts.history, ...(opts.plain ?? [])]) got[room] = [];
  const c: StreamClient = { socket, got, connects: 0, recovered: [], acks: [], resets: [], replicas: [] };
  socket.on(opts.event ?? 'm', (_data: unknown, meta: MessageMeta) => got[meta.room]?.push(meta.id));
  socket.on('herald:reset', (body: unknown) => c.resets.push(body));
  socket.on('herald:hello', (hello: { replica: string }) => c.replicas.push(hello.replica));

  const subscribeAll = async () => {
    await Promise.all([
      ...opts.history.map(async (room) => {
        const since = got[room]!.at(-1) ?? c.acks.findLast((a) => a.room === room && a.ack.offset)?.ack.offset;
        const ack = (await socket.timeout(5000).emitWithAck('subscribe', since ? { room, since } : room)) as StreamClient['acks'][number]['ack'];
        c.acks.push({ room, since, ack });
      }),
      ...(opts.plain ?? []).map((room) => socket.timeout(5000).emitWithAck('subscribe', room)),
    ]);
  };
  let first!: Promise<void>;
  const connected = new Promise<void>((resolve) => {
    socket.on('connect', () => {
      c.connects++;
      if (c.connects === 1) {
        first = subscribeAll();
        resolve();
        return;
      }
      c.recovered.push(socket.recovered);
      // A reconnect's subscribe can be cut short by the next drop; the one after that redoes it.
      if (opts.contract === 'explicit') subscribeAll().catch(() => {});
    });
  });
  await connected;
  await first;
  for (const a of c.acks) assert.equal(a.ack.ok, true, JSON.stringify(a.ack));
  return c;
}

/** Ids received more than once, and the first place the order goes backwards, for a failure message. */
export function streamFaults(ids: readonly string[], compare: (a: string, b: string) => number): { duplicates: number; backwards: number } {
  const seen = new Set<string>();
  let duplicates = 0;
  let backwards = 0;
  for (const [i, id] of ids.entries()) {
    if (seen.has(id)) duplicates++;
    seen.add(id);
    if (i > 0 && compare(ids[i - 1]!, id) >= 0) backwards++;
  }
  return { duplicates, backwards };
}
