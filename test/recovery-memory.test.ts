import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { connectClient, getJson, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';

const KEY = 'recovery-memory-key-0123456789';
const PROBE = fileURLToPath(new URL('./fixtures/heap-probe.cjs', import.meta.url));
/** The replica's heap limit: what the journal kept of 60 KB messages used to exceed it several times over. */
const HEAP_MB = 96;
const PUBLISHES = 2000;
const MESSAGE_BYTES = 60 * 1024;
/** Heap and array buffers after GC the replica may use once the publishes are done (it starts near 12 MB). */
const HEAP_BOUND_MB = 48;

/** The replica's heap after a full GC, with the array buffers kept outside it (see fixtures/heap-probe.cjs). */
async function heapAfterGc(gw: Gateway): Promise<number> {
  const seen = gw.logs.length;
  gw.signal('SIGUSR2');
  const line = await gw.waitForLog('heap probe', (l) => l.msg === 'heap probe' && gw.logs.indexOf(l) >= seen);
  return (line.heapUsed as number) + (line.arrayBuffers as number);
}

/**
 * Connection recovery keeps, per history room, which entry went out under which offset. It must
 * not keep the messages themselves: 2,000 publishes of 60 KB (120 MB) into history rooms, most
 * without members, through a replica limited to a 96 MB heap.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`recovery journal memory under 60 KB publishes (TRANSPORT=${transport})`, () => {
    let redis: RedisProcess;
    let gw: Gateway;
    let member: TestClient;

    before(async () => {
      redis = await startRedis();
      gw = await startGateway({
        nodeArgs: [`--max-old-space-size=${HEAP_MB}`, '--expose-gc', '--require', PROBE],
        env: { TRANSPORT: transport, REDIS_URL: redis.url, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'h:* size=5', PUBLIC_ROOMS: 'h:*', ALLOW_ANONYMOUS: 'true', CONNECTION_RECOVERY_SECONDS: '120' },
      });
      member = await connectClient(gw.url);
      assert.equal(((await member.subscribe('h:member')) as { ok: boolean }).ok, true);
    });
    after(async () => {
      member?.close();
      await gw?.stop();
      await redis?.stop();
    });

    it('stays up with its heap bounded, whatever the message size and whether rooms have members', async () => {
      const before = await heapAfterGc(gw);
      const body = (room: string) => JSON.stringify({ room, event: 'm', data: 'x'.repeat(MESSAGE_BYTES) });
      let next = 0;
      const failures: number[] = [];
      const worker = async () => {
        // A replica that died answers nothing more: stop at the first failures.
        for (let i = next++; i < PUBLISHES && failures.length < 8; i = next++) {
          // One in ten to the room with a member, the rest spread over 50 rooms nobody is in.
          const room = i % 10 === 0 ? 'h:member' : `h:empty-${i % 50}`;
          const res = await fetch(`${gw.url}/v1/publish`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: body(room) }).catch(() => undefined);
          if (res?.status !== 200) failures.push(res?.status ?? 0);
          await res?.arrayBuffer();
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
      const exit = gw.process.exitCode ?? gw.process.signalCode;
      assert.equal(exit, null, `the replica is still running (it exited: ${exit}; ${gw.logs.at(-1)?.msg ?? ''})`);
      assert.deepEqual(failures, [], 'every publish is accepted');
      await member.waitFor('the last message to the member', () => member.received.length === PUBLISHES / 10);
      assert.equal((await getJson(`${gw.url}/healthz`)).status, 200);
      const after = await heapAfterGc(gw);
      console.log(`# ${transport}: heap and array buffers after GC ${(before / 2 ** 20).toFixed(1)} MB before, ${(after / 2 ** 20).toFixed(1)} MB after ${PUBLISHES} publishes of 60 KB`);
      assert.ok(after < HEAP_BOUND_MB * 2 ** 20, `heap and array buffers after GC ${(after / 2 ** 20).toFixed(1)} MB, bound ${HEAP_BOUND_MB} MB`);
    });
  });
}
