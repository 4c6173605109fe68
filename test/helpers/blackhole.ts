import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP relay on 127.0.0.1 in front of one Redis that can go silent: a partition in which packets
 * are dropped with no RST or FIN, so every connection through it hangs instead of closing.
 *
 * While a connection is cut, nothing it sends reaches the other side and nothing is closed: bytes
 * wait here (as packets in flight would on a path that later heals), a close waits too. New
 * connections are accepted and held, never connected upstream. `heal` forwards again: what waited
 * is delivered (a command sent before the client gave up on its connection reaches Redis then,
 * the worst case for a publisher's retry), held connections reach Redis.
 *
 * Connections are told apart by the name their client gives itself (`CLIENT SETNAME`, which
 * ioredis sends first with `connectionName`), so a test can cut one replica's subscriber alone.
 */
export interface BlackholeRelay {
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  /** Cuts the connections whose name `which` accepts (every one without it), open ones and new ones. */
  cut(which?: (name: string) => boolean): void;
  /** Forwards again, both ways; what waited is delivered. */
  heal(): void;
  /** Names of the connections open now ('' for one that gave none). */
  names(): string[];
  close(): Promise<void>;
}

/** How long a new connection may take to name itself before it counts as unnamed. */
const NAME_WAIT_MS = 300;
const SETNAME = /SETNAME\r\n\$\d+\r\n([^\r]+)\r\n/i;

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  /** Undefined until it named itself (or the wait ran out). */
  name: string | undefined;
  held: boolean;
  toServer: Buffer[];
  toClient: Buffer[];
  clientEnded: boolean;
  upstreamEnded: boolean;
}

export async function startBlackhole(redisPort: number): Promise<BlackholeRelay> {
  const pairs = new Set<Pair>();
  let matcher: ((name: string) => boolean) | undefined;

  const destroy = (p: Pair) => {
    pairs.delete(p);
    p.client.destroy();
    p.upstream?.destroy();
  };

  /** Sends what waited and carries on forwarding (or closing) as the two sides do. */
  const flow = (p: Pair) => {
    if (p.held || p.name === undefined) return;
    if (!p.upstream) {
      const upstream = connect({ host: '127.0.0.1', port: redisPort });
      p.upstream = upstream;
      upstream.setNoDelay(true);
      upstream.on('data', (chunk: Buffer) => {
        if (p.held) p.toClient.push(chunk);
        else if (!p.client.destroyed) p.client.write(chunk);
      });
      upstream.on('end', () => {
        p.upstreamEnded = true;
        if (!p.held) p.client.end();
      });
      upstream.on('error', () => destroy(p));
      upstream.on('close', () => {
        if (!p.held) destroy(p);
      });
    }
    for (const chunk of p.toServer.splice(0)) p.upstream.write(chunk);
    if (!p.client.destroyed) for (const chunk of p.toClient.splice(0)) p.client.write(chunk);
    else p.toClient.length = 0;
    if (p.clientEnded) p.upstream.end();
    if (p.upstreamEnded) p.client.end();
  };

  const named = (p: Pair, name: string) => {
    if (p.name !== undefined) return;
    p.name = name;
    p.held = matcher?.(name) ?? false;
    flow(p);
  };

  const server: Server = createServer((client) => {
    const p: Pair = { client, upstream: undefined, name: undefined, held: false, toServer: [], toClient: [], clientEnded: false, upstreamEnded: false };
    pairs.add(p);
    client.setNoDelay(true);
    const unnamed = setTimeout(() => named(p, ''), NAME_WAIT_MS);
    client.on('data', (chunk: Buffer) => {
      if (p.name === undefined) {
        p.toServer.push(chunk);
        const m = SETNAME.exec(Buffer.concat(p.toServer).toString('latin1'));
        if (m) {
          clearTimeout(unnamed);
          named(p, m[1]!);
        }
        return;
      }
      if (p.held || !p.upstream) p.toServer.push(chunk);
      else p.upstream.write(chunk);
    });
    client.on('end', () => {
      p.clientEnded = true;
      if (!p.held && p.upstream) p.upstream.end();
    });
    // A client that gave up on a cut connection: what it sent still reaches Redis on `heal`.
    client.on('error', () => {
      p.clientEnded = true;
    });
    client.on('close', () => {
      clearTimeout(unnamed);
      p.clientEnded = true;
      if (!p.held && p.name !== undefined) {
        p.upstream?.end();
        pairs.delete(p);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });

  return {
    url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut(which) {
      matcher = which ?? (() => true);
      for (const p of pairs) if (p.name !== undefined && matcher(p.name)) p.held = true;
    },
    heal() {
      matcher = undefined;
      for (const p of [...pairs]) {
        if (!p.held) continue;
        p.held = false;
        flow(p);
        if (p.client.destroyed) pairs.delete(p);
      }
    },
    names: () => [...pairs].filter((p) => !p.client.destroyed).map((p) => p.name ?? ''),
    async close() {
      for (const p of [...pairs]) destroy(p);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
