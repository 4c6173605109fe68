import { connect, createServer, type Socket } from 'node:net';

/** A TCP relay on a loopback port in front of `targetPort`, whose connections a test can reset. */
export interface Relay {
  readonly port: number;
  readonly url: string;
  /** Connections relayed so far. */
  readonly accepted: number;
  /** Sends new connections to `port` from now on (a balancer that moved on). */
  retarget(port: number): void;
  /** Resets every open connection on both sides (TCP RST), as a network drop would; returns how many. */
  resetAll(): number;
  close(): Promise<void>;
}

export async function startRelay(targetPort: number): Promise<Relay> {
  const pairs = new Set<[Socket, Socket]>();
  let accepted = 0;
  let target = targetPort;
  const server = createServer((client) => {
    accepted++;
    const upstream = connect(target, '127.0.0.1');
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    retarget(port) {
      target = port;
    },
    resetAll() {
      const n = pairs.size;
      for (const pair of [...pairs]) {
        pairs.delete(pair);
        for (const s of pair) s.resetAndDestroy();
      }
      return n;
    },
    async close() {
      for (const pair of pairs) for (const s of pair) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
