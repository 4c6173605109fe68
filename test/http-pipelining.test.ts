import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
const ROOM = 'h:pipe';

/** Writes `requests` in one write on one connection; resolves with the raw answers once the server closes or all have come. */
function pipelined(url: string, requests: string[]): Promise<{ statuses: number[]; bodies: string[]; closedByServer: boolean }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(requests.join('')));
    let text = '';
    const parse = () => {
      const statuses: number[] = [];
      const bodies: string[] = [];
      let rest = text;
      for (;;) {
        const head = /^HTTP\/1\.1 (\d+)[^]*?\r\n\r\n/.exec(rest);
        if (!head) break;
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head[0])?.[1] ?? 0);
        const body = rest.slice(head[0].length, head[0].length + length);
        if (Buffer.byteLength(body) < length) break;
        statuses.push(Number(head[1]));
        bodies.push(body);
        rest = rest.slice(head[0].length + length);
      }
      return { statuses, bodies };
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const got = parse();
      if (got.statuses.length === requests.length) {
        socket.destroy();
        resolve({ ...got, closedByServer: false });
      }
    });
    socket.on('error', reject);
    socket.on('end', () => resolve({ ...parse(), closedByServer: true }));
  });
}

function publishRequest(n: number, idempotencyKey: string): string {
  const body = JSON.stringify({ room: ROOM, event: 'item', data: { n } });
  return (
    `POST /v1/publish HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer ${KEY}\r\nIdempotency-Key: ${idempotencyKey}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

async function historyData(gw: Gateway): Promise<unknown[]> {
  const res = await fetch(`${gw.url}/v1/rooms/${encodeURIComponent(ROOM)}/history`, { headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(res.status, 200);
  return ((await res.json()) as { entries: { data: unknown }[] }).entries.map((e) => e.data);
}

/**
 * HTTP/1.1 pipelining of publishes (docs/reference/http-api.md, "Pipelining"): uWS closes a
 * connection that sends a request before the previous asynchronous answer was written, answering
 * neither; the node transport answers them in order. With Idempotency-Key, a client that retries
 * the unanswered ones on a new connection leaves each message in history once.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`pipelined publishes (TRANSPORT=${transport})`, () => {
    let redis: RedisProcess;
    let gw: Gateway;

    before(async () => {
      redis = await startRedis();
      gw = await startGateway({ env: { TRANSPORT: transport, REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'h:*' } });
      // Publishes into history need Redis: wait until the replica says it is ready.
      await waitFor('the replica ready', async () => (await fetch(`${gw.url}/readyz`)).status === 200);
    });

    after(async () => {
      await gw?.stop();
      await redis?.stop();
    });

    it('retried with their Idempotency-Keys on a new connection, each message is kept once', async () => {
      const keys = ['k-0', 'k-1', 'k-2'];
      const first = await pipelined(gw.url, keys.map((k, n) => publishRequest(n, k)));
      if (transport === 'node') {
        assert.deepEqual(first.statuses, [200, 200, 200], 'the node transport answers pipelined requests in order');
      } else {
        assert.ok(first.closedByServer && first.statuses.length < keys.length, `uWS closes the connection before answering all: ${JSON.stringify(first)}`);
      }
      // What a pipelining client must do: retry what was not answered, on a new connection.
      for (let n = first.statuses.length; n < keys.length; n++) {
        const again = await pipelined(gw.url, [publishRequest(n, keys[n]!)]);
        assert.deepEqual(again.statuses, [200]);
      }
      assert.deepEqual(await historyData(gw), [{ n: 0 }, { n: 1 }, { n: 2 }]);
      assert.equal(gw.process.exitCode, null, 'the replica is up');
    });
  });
}
