import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

// Ports handed out by this process, so two calls never return the same one before it is bound.
const given = new Set<number>();

/**
 * Below the kernel's ephemeral range: a port from inside it can be taken by any outgoing
 * connection (an ioredis client, a test's HTTP request) between this check and the server's bind,
 * and then redis-server fails to start ("Address already in use"). Seen in CI.
 */
function range(): [number, number] {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && low > 12_000) return [10_000, low];
  } catch {
    // not Linux: fall through
  }
  return [0, 0];
}
const [LOW, HIGH] = range();

function bindable(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, '127.0.0.1', () => {
      const address = srv.address();
      const bound = typeof address === 'object' && address ? address.port : undefined;
      srv.close(() => resolve(bound));
    });
  });
}

/** A port that was free a moment ago, for servers (like redis-server) that cannot bind port 0. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const candidate = HIGH > LOW ? LOW + Math.floor(Math.random() * (HIGH - LOW)) : 0;
    if (given.has(candidate)) continue;
    const port = await bindable(candidate);
    if (port !== undefined && !given.has(port)) {
      given.add(port);
      return port;
    }
  }
  throw new Error('no free loopback port found in 100 attempts');
}
