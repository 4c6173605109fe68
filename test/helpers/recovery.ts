import { io as connect, type Socket } from 'socket.io-client';
import { onceWithin } from './wait.js';

/** A plain socket.io-client that records `m` events (data and meta); reconnects only when the test says so. */
export async function recoveringClient(url: string, auth?: Record<string, unknown>) {
  const socket = connect(url, { transports: ['websocket'], forceNew: true, reconnection: false, auth });
  const got: { room: string; data: unknown; id: string }[] = [];
  socket.on('m', (data: unknown, meta: { room: string; id: string }) => got.push({ room: meta.room, data, id: meta.id }));
  await onceWithin(socket, 'connect', 'connect');
  return { socket, got };
}

/** Drops the connection as a network failure would (the server sees "transport close"), and waits until it is gone. */
export async function drop(socket: Socket): Promise<void> {
  const gone = onceWithin(socket, 'disconnect', 'disconnect');
  (socket.io.engine as unknown as { close(): void }).close();
  await gone;
}

/** Reconnects a dropped client with what it kept (its session id and last offset); resolves with `recovered`, or the refusal. */
export async function reconnect(socket: Socket): Promise<{ recovered: boolean } | { refused: string }> {
  const outcome = Promise.race([
    onceWithin(socket, 'connect', 'reconnect').then(() => ({ recovered: socket.recovered })),
    onceWithin<[Error & { data?: { code: string } }]>(socket, 'connect_error', 'connect_error').then(([e]) => ({ refused: e.data?.code ?? e.message })),
  ]);
  socket.connect();
  return outcome;
}
