import { Server } from 'socket.io';
import type { us_listen_socket } from 'uWebSockets.js';
import { memoryAdapter } from '../../src/cluster/adapter.js';
import { loadUws } from '../../src/transport/index.js';
import { UwsDelivery } from '../../src/transport/uws-delivery.js';

/** A real Socket.IO server on uWS with herald's adapter and uWS delivery, listening on a free loopback port. */
export interface UwsSocketIo {
  io: Server;
  delivery: UwsDelivery;
  url: string;
  /** Closes the server and stops listening. */
  close(): void;
}

export async function startUwsSocketIo(opts: { batchMs: number }): Promise<UwsSocketIo> {
  const loaded = loadUws();
  if (!('uws' in loaded)) throw loaded.error;
  const io = new Server();
  const app = loaded.uws.App();
  io.attachApp(app);
  const delivery = new UwsDelivery(app, { batchMs: opts.batchMs });
  io.adapter(memoryAdapter({ delivery, recovery: undefined }) as never);
  const token = await new Promise<us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (t) => (t ? resolve(t) : reject(new Error('uWS did not listen')))));
  return {
    io,
    delivery,
    url: `http://127.0.0.1:${loaded.uws.us_socket_local_port(token)}`,
    close() {
      io.close();
      loaded.uws.us_listen_socket_close(token);
    },
  };
}
