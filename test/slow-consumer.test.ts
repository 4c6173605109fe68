import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { rawSocket } from './helpers/raw.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
const BOUND = 256 * 1024;
const HEALTHY = 500;
const MESSAGES = 200;
const RATE = 50;
const FLOOD_MESSAGE = 60_000;

/**
 * One client that reads nothing, 500 that do, one history room, a steady publish rate. Run A has
 * no slow client, run B has one; the test prints both so their delivery and latency can be
 * compared, and asserts the policy: the slow client is closed once its queue passes the bound
 * (which stays bounded), the others get everything. test/slow-reader.test.ts checks that a
 * closed client then recovers every message.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`slow consumers (TRANSPORT=${transport})`, () => {
    let gw: Gateway;
    const healthy: TestClient[] = [];

    before(async () => {
      gw = await startGateway({
        env: {
          TRANSPORT: transport,
          PUBLISH_KEYS: KEY,
          HISTORY_ROOMS: 'slow:*',
          SLOW_CLIENT_MAX_BYTES: String(BOUND),
          CONNECT_BURST_PER_IP: '2000',
          CONNECT_RATE_PER_IP: '1000',
        },
      });
      for (let i = 0; i < HEALTHY; i += 50) {
        healthy.push(...(await Promise.all(Array.from({ length: Math.min(50, HEALTHY - i) }, () => connectClient(gw.url)))));
      }
      await Promise.all(healthy.map((c) => c.subscribe('slow:main')));
    });

    after(async () => {
      for (const c of healthy) c.close();
      await gw?.stop();
    });

    /** Publishes MESSAGES numbered messages at RATE/s and checks every healthy client got all, in order. */
    const steadyRun = async (label: string) => {
      const marks = healthy.map((c) => c.received.length);
      for (let n = 1; n <= MESSAGES; n++) {
        assert.equal((await publish(gw.url, { room: 'slow:main', event: label, data: { n, pad: 'x'.repeat(1000) } }, KEY)).status, 200);
        await new Promise((r) => setTimeout(r, 1000 / RATE));
      }
      await waitFor(`${label}: every healthy client has all ${MESSAGES}`, () =>
        healthy.every((c, i) => c.received.slice(marks[i]).filter((r) => r.event === label).length === MESSAGES),
      );
      for (const [i, c] of healthy.entries()) {
        const got = c.received.slice(marks[i]).filter((r) => r.event === label);
        assert.deepEqual(got.map((r) => (r.data as { n: number }).n), Array.from({ length: MESSAGES }, (_, k) => k + 1));
      }
    };

    it('keeps healthy clients whole while a client that reads nothing is closed past the bound', async () => {
      const runA = await measured('without', () => steadyRun('without'));
      const slow = await rawSocket(gw.url, { connect: true });
      slow.send('421["subscribe","slow:main"]');
      const subAck = await slow.next((f) => f.startsWith('431'));
      const offset = JSON.parse(subAck!.slice(3))[0].offset as string;
      slow.send('422["subscribe","flood"]');
      await slow.next((f) => f.startsWith('432'));
      // Stop reading: the kernel buffers fill, then herald's queue for this client.
      (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const flood = (async () => {
        // Until it is closed (bounded): the kernel buffers fill first, then herald's queue.
        for (let i = 0; i < 600 && (await getJson(`${gw.url}/readyz`)).body.slowConsumerDisconnects === 0; i++) {
          await publish(gw.url, { room: 'flood', event: 'big', data: 'f'.repeat(FLOOD_MESSAGE) }, KEY);
        }
      })();
      const runB = await measured('with', () => steadyRun('with'));
      await flood;

      await waitFor('the slow client to be closed', async () => (await getJson(`${gw.url}/readyz`)).body.slowConsumerDisconnects === 1);
      assert.ok(gw.logs.some((l) => l.reason === 'slow_consumer'), 'logged with reason slow_consumer');
      const peak = peakQueued;
      console.log(
        `# ${transport}: ${HEALTHY} healthy clients, ${MESSAGES} messages at ${RATE}/s each run; ` +
          `without the slow client: ${runA}; with it: ${runB}; ` +
          `slow client closed; largest queue seen ${peak} bytes (bound ${BOUND})`,
      );
      assert.ok(peak <= BOUND + FLOOD_MESSAGE + 1024, `queued ${peak} bytes for one client, bound ${BOUND} + one message`);

      // It comes back (as an app would, with its last position) and recovers what it missed.
      const back = await connectClient(gw.url);
      healthy.push(back);
      const ack = (await back.subscribe({ room: 'slow:main', since: offset })) as { recovered: boolean };
      assert.equal(ack.recovered, true);
      await back.waitFor('everything it missed', (r) => r.event === 'with' && (r.data as { n: number }).n === MESSAGES);
      assert.equal(back.received.filter((r) => r.event === 'with').length, MESSAGES);
    });

    let peakQueued = 0;
    /**
     * Runs `fn` while recording healthy clients' latency (arrival minus meta.ts) for events named
     * `label` and sampling the replica's largest per-client queue; returns a summary line.
     */
    async function measured(label: string, fn: () => Promise<void>): Promise<string> {
      const times: number[] = [];
      const recorders = healthy.map((c) => {
        const r = (event: string, _d: unknown, meta: { ts?: number }) => {
          if (event === label && typeof meta?.ts === 'number') times.push(Date.now() - meta.ts);
        };
        c.socket.onAny(r);
        return [c, r] as const;
      });
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const m = await (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
          peakQueued = Math.max(peakQueued, Number(/^herald_outbound_buffer_max_bytes (\d+)/m.exec(m)?.[1] ?? 0));
          await new Promise((r) => setTimeout(r, 200));
        }
      })();
      await fn();
      sampling = false;
      await sampler;
      for (const [c, r] of recorders) c.socket.offAny(r);
      times.sort((a, b) => a - b);
      const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
      return `${times.length} deliveries, latency p50 ${q(0.5)} ms p99 ${q(0.99)} ms max ${times.at(-1)} ms`;
    }
  });
}
