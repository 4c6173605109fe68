import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { publish } from './helpers/clients.js';
import { startBackend, type Gateway } from './helpers/gateway.js';
import { rawSocket, type RawSocket } from './helpers/raw.js';
import type { RedisProcess } from './helpers/redis.js';

const KEY = 'recovery-resubscribe-drop-key-0123456789';
const ROOM = 'h:match';

/** The published payload's `n` and the recovery offset of an event frame `42["m",{"n":..},{meta},"<offset>"]`; undefined for other frames. */
function event(frame: string): { n: number; id: string; offset: string } | undefined {
  if (!frame.startsWith('42["m"')) return undefined;
  const [, data, meta, offset] = JSON.parse(frame.slice(2)) as [string, { n: number }, { id: string }, string];
  return { n: data.n, id: meta.id, offset };
}
const ns = (raw: RawSocket) => raw.frames.map(event).filter((e) => e !== undefined).map((e) => e.n);
const connectAnswer = async (raw: RawSocket) => JSON.parse((await raw.next((f) => f.startsWith('40')))!.slice(2)) as { sid: string; pid?: string };

/**
 * A restored connection whose client also subscribes again with `since` (the explicit contract,
 * as the docs say to do on every connect) and then drops before it has read what the restore
 * replayed: those frames were sent, but lost in flight. Found at 100,000 fans (`npm run
 * bench:scale`, a kill -9 storm whose reconnect attempts timed out on saturated replicas): the
 * re-subscribe moved the room's recorded position to the newest message the restore had sent, so
 * the next restore, offered the client's older offset, started after messages it never got, and
 * said `recovered: true`. Now that position holds only for offsets past the re-subscribe; for an
 * older one the restore cannot tell, and says `recovered: false` (the client subscribes again with
 * its own `since`), or replays what the client lacks.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`a re-subscribe on a restored connection that drops before its replay is read (TRANSPORT=${transport})`, () => {
    let gateways: Gateway[];
    let redis: RedisProcess | undefined;
    const sockets: RawSocket[] = [];
    before(async () => {
      ({ gateways, redis } = await startBackend('redis', { TRANSPORT: transport, PUBLISH_KEYS: KEY, HISTORY_ROOMS: 'h:*', PUBLIC_ROOMS: 'h:*', ALLOW_ANONYMOUS: 'true' }));
    });
    after(async () => {
      for (const s of sockets) s.close();
      for (const g of gateways ?? []) await g.stop();
      await redis?.stop();
    });

    it('the next restore replays what the client never read, or says it cannot', async () => {
      const url = gateways[0]!.url;
      const send = async (n: number) => assert.equal((await publish(url, { room: ROOM, event: 'm', data: { n } }, KEY)).status, 200);
      const open = async (auth: object) => {
        const raw = await rawSocket(url, { connect: false });
        sockets.push(raw);
        raw.send(`40${JSON.stringify(auth)}`);
        return { raw, answer: await connectAnswer(raw) };
      };

      // The first connection: subscribed, 1 to 3 read.
      const a = await open({});
      assert.ok(a.answer.pid, 'connection state recovery is on');
      a.raw.send(`421["subscribe",${JSON.stringify(ROOM)}]`);
      assert.ok(await a.raw.next((f) => f.startsWith('431')));
      for (const n of [1, 2, 3]) await send(n);
      const third = event((await a.raw.next((f) => event(f)?.n === 3))!)!;
      a.raw.ws.terminate();
      await a.raw.closed;

      // Missed while away: 4 to 6.
      for (const n of [4, 5, 6]) await send(n);

      // The second connection is restored and replays 4 to 6; the client subscribes again with its
      // own `since` (3), then drops as if those frames had never reached it.
      const b = await open({ pid: a.answer.pid, offset: third.offset });
      assert.equal(b.answer.pid, a.answer.pid, 'the session was restored');
      assert.ok(await b.raw.next((f) => event(f)?.n === 6), 'the restore replayed 4 to 6');
      b.raw.send(`422["subscribe",${JSON.stringify({ room: ROOM, since: third.id })}]`);
      const ack = JSON.parse((await b.raw.next((f) => f.startsWith('432')))!.slice(3)) as [{ ok: boolean }];
      assert.equal(ack[0].ok, true);
      b.raw.ws.terminate();
      await b.raw.closed;

      // The third connection offers the offset of the last frame the client read: 3's.
      const c = await open({ pid: a.answer.pid, offset: third.offset });
      const restored = c.answer.pid === a.answer.pid;
      if (!restored) {
        // recovered: false, so the client subscribes again with its own `since`, as the docs say.
        c.raw.send(`423["subscribe",${JSON.stringify({ room: ROOM, since: third.id })}]`);
        assert.ok(await c.raw.next((f) => f.startsWith('433')));
      }
      await send(7);
      assert.ok(await c.raw.next((f) => event(f)?.n === 7), 'live again');
      assert.deepEqual(ns(c.raw), [4, 5, 6, 7], `${restored ? 'restored (recovered: true)' : 'not restored, subscribed with since'}: what the client never read, once, then live`);
    });
  });
}
