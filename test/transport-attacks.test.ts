import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { connectClient, type ClientTransport, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';

const SECRET = 'test-jwt-secret-0123456789-abcdefghij';
const ROOM = 'bin:attachments';

const publishToken = () =>
  new SignJWT({ sub: 'publisher', publish: ['bin:*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));

/** Whatever socket.io-client hands out for a binary attachment (Buffer, ArrayBuffer or a view), as a Buffer. */
function bytesOf(x: unknown): Buffer | undefined {
  if (Buffer.isBuffer(x)) return x;
  if (x instanceof ArrayBuffer) return Buffer.from(x);
  if (ArrayBuffer.isView(x)) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  return undefined;
}

for (const transport of ['uws', 'node'] as const) {
  describe(`transport under attack (TRANSPORT=${transport})`, () => {
    let gw: Gateway;
    const clients: TestClient[] = [];

    before(async () => {
      gw = await startGateway({
        env: { TRANSPORT: transport, JWT_SECRET: SECRET, ALLOW_ANONYMOUS: 'true', PUBLIC_ROOMS: 'bin:*', CLIENT_RATE: '1000', CLIENT_BURST: '1000' },
      });
      assert.equal((await gw.waitForLog('listening', (l) => l.msg === 'listening')).transport, transport);
    });
    after(async () => {
      for (const c of clients) c.close();
      await gw?.stop();
    });

    it('delivers every byte of a multi-attachment publish to WebSocket and long-polling subscribers', async () => {
      const connect = async (t: ClientTransport, auth?: Record<string, unknown>) => {
        const c = await connectClient(gw.url, { transport: t, auth });
        clients.push(c);
        return c;
      };
      const subscribers = { websocket: await connect('websocket'), polling: await connect('polling') };
      for (const s of Object.values(subscribers)) assert.deepEqual(await s.subscribe(ROOM), { ok: true, room: ROOM });
      const token = await publishToken();
      for (const via of ['websocket', 'polling'] as const) {
        const publisher = await connect(via, { token });
        // Three attachments of different sizes, so an emptied or swapped one cannot pass for another.
        const parts = [randomBytes(1000), randomBytes(2000), randomBytes(3000)] as const;
        const label = `from ${via}`;
        const ack = (await publisher.socket.timeout(5000).emitWithAck('publish', { room: ROOM, event: 'blob', data: { label, parts } })) as { ok: boolean };
        assert.equal(ack.ok, true, `publish ack: ${JSON.stringify(ack)}`);
        for (const [name, sub] of Object.entries(subscribers)) {
          const got = await sub.waitFor(`blob ${label} on ${name}`, (r) => r.event === 'blob' && (r.data as { label?: string }).label === label);
          const received = (got.data as { parts: unknown[] }).parts.map(bytesOf);
          assert.deepEqual(
            received.map((b) => b?.length),
            parts.map((p) => p.length),
            `attachment sizes published ${label} as received on ${name}`,
          );
          received.forEach((b, i) => assert.ok(b!.equals(parts[i]!), `attachment ${i} published ${label}, received on ${name}: bytes differ`));
        }
      }
    });
  });
}
