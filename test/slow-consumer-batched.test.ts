import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
/** The smallest SLOW_CLIENT_MAX_BYTES allowed. */
const BOUND = 16 * 1024;
const ENTRIES = 100;

/**
 * On uWS a connection's writes of one turn wait in the outbox (src/transport/uws-outbox.ts) until
 * the turn ends, up to 64 KiB, more than the smallest slow-consumer bound. What waits there is
 * not a client falling behind: a `last=100` subscribe, whose 100 newest messages (1 KB each) are
 * written in one turn, must reach a client that reads, with SLOW_CLIENT_MAX_BYTES at 16 KiB,
 * without closing it as a slow consumer.
 */
describe('the slow-consumer bound against one turn\'s batched writes (TRANSPORT=uws)', () => {
  let gw: Gateway;
  let client: TestClient | undefined;

  before(async () => {
    gw = await startGateway({
      env: { TRANSPORT: 'uws', PUBLISH_KEYS: KEY, HISTORY_ROOMS: `small:* last=${ENTRIES}`, SLOW_CLIENT_MAX_BYTES: String(BOUND) },
    });
  });
  after(async () => {
    client?.close();
    await gw?.stop();
  });

  it(`sends a ${ENTRIES}-message \`last\` replay of ${ENTRIES} KB to a client that reads, past a ${BOUND / 1024} KiB bound`, async () => {
    for (let n = 1; n <= ENTRIES; n++) {
      assert.equal((await publish(gw.url, { room: 'small:a', event: 'm', data: { n, pad: 'x'.repeat(1000) } }, KEY)).status, 200);
    }
    client = await connectClient(gw.url);
    await client.subscribe('small:a');
    await waitFor(`all ${ENTRIES} replayed, or the client closed`, () => client!.received.length >= ENTRIES || !client!.socket.connected);
    assert.ok(client.socket.connected, 'the client was closed');
    assert.deepEqual(client.received.map((r) => (r.data as { n: number }).n), Array.from({ length: ENTRIES }, (_, i) => i + 1));
    assert.equal((await getJson(`${gw.url}/readyz`)).body.slowConsumerDisconnects, 0);
  });
});
