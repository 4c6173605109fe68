import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { getJson, publish } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { rawHttp } from './helpers/raw.js';

const KEY = 'test-publish-key-0123456789';
/** Over PUBLISH_MAX_BYTES (64 KiB) and, before the fix, over the 1 MiB discard floor; under today's 16 MiB. */
const FIVE_MB = Buffer.alloc(5 * 1024 * 1024, 'x');
/** herald's discard floor (DISCARD_FLOOR_BYTES): a body over the limit is read up to this, then cut off. */
const DISCARD_BYTES = 16 * 1024 * 1024;
/** A streamed body this long is given up on by the test if herald has not cut it off. */
const ENDLESS_BYTES = 256 * 1024 * 1024;

/**
 * Streams a chunked POST body of up to `maxBytes`, minding backpressure, until the server closes
 * the connection: how many body bytes the socket took, whether the server closed it first, and
 * what it answered.
 */
function streamUntilClosed(port: number, maxBytes: number): Promise<{ written: number; cut: boolean; answer: string }> {
  const chunk = Buffer.alloc(1024 * 1024, 'x');
  const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
  return new Promise((resolve) => {
    let written = 0;
    let answer = '';
    let finished = false;
    const socket = tcpConnect(port, '127.0.0.1', () => {
      socket.write(`POST /v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
      pump();
    });
    const finish = (cut: boolean) => {
      if (finished) return;
      finished = true;
      socket.destroy();
      resolve({ written, cut, answer });
    };
    const pump = () => {
      while (!finished && written < maxBytes) {
        written += chunk.length;
        if (!socket.write(frame)) {
          socket.once('drain', pump);
          return;
        }
      }
      if (!finished) finish(false);
    };
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (answer += d));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
  });
}

for (const transport of ['uws', 'node'] as const) {
  describe(`bodies over PUBLISH_MAX_BYTES (${transport})`, () => {
    let gw: Gateway;
    const url = () => `${gw.url}/v1/publish`;
    before(async () => {
      gw = await startGateway({ env: { TRANSPORT: transport, PUBLISH_KEYS: KEY } });
    });
    after(async () => {
      await gw?.stop();
    });

    it('answers every 5 MB body with the 413, read to its end, through fetch and a raw socket', async () => {
      // Each attempt must get it: no retry. Before, most of these failed with EPIPE or ECONNRESET.
      for (let i = 0; i < 5; i++) {
        const res = await fetch(url(), { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: FIVE_MB });
        assert.equal(res.status, 413, `attempt ${i}`);
        assert.equal(res.headers.get('connection'), 'close', `attempt ${i}: herald says it closes`);
        assert.equal(((await res.json()) as any).error.code, 'payload_too_large', `attempt ${i}`);
      }
      const head = `POST /v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: ${FIVE_MB.length}\r\n\r\n`;
      for (let i = 0; i < 3; i++) {
        const answer = await rawHttp(gw.port, Buffer.concat([Buffer.from(head), FIVE_MB]));
        assert.match(answer, /^HTTP\/1\.1 413 /, `raw attempt ${i}: ${answer.slice(0, 80)}`);
        assert.match(answer, /"code":"payload_too_large"/, `raw attempt ${i}`);
      }
      assert.equal((await publish(gw.url, { room: 'after', event: 'e', data: 1 }, KEY)).status, 200);
    });

    it('cuts off a body streamed far past the discard bound, reading no more than the bound, and keeps serving', async () => {
      const rss = async () => (await getJson(`${gw.url}/readyz`)).body.rssBytes as number;
      const before = await rss();
      const streamed = await streamUntilClosed(gw.port, ENDLESS_BYTES);
      assert.equal(streamed.cut, true, `herald closed the connection (${streamed.written} bytes written)`);
      // The bound plus what the sockets' buffers hold.
      assert.ok(streamed.written < 2 * DISCARD_BYTES, `${streamed.written} bytes written before the close`);
      // It may or may not have been read before the close; if it was, it is the 413.
      if (streamed.answer !== '') assert.match(streamed.answer, /^HTTP\/1\.1 413 /);
      // Declared past the bound: answered at once, without reading.
      const declared = await rawHttp(gw.port, `POST /v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: 100000000\r\n\r\n{"room":`);
      assert.match(declared, /^HTTP\/1\.1 413 /);
      // Far below the stream: the churn of reading it may grow V8's young generation (seen: 16 MiB
      // once in 12 runs), but nothing it read is kept.
      const grown = (await rss()) - before;
      assert.ok(grown < ENDLESS_BYTES / 4, `RSS grew ${grown} bytes`);
      assert.equal((await publish(gw.url, { room: 'after', event: 'e', data: 1 }, KEY)).status, 200);
    });
  });
}
