import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { rawHttp, rawSocket, type RawSocket } from './helpers/raw.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
const SECRET = 'test-jwt-secret-0123456789-abcdefghij';
const MAX_SUBSCRIPTIONS = 50;
const BURST = 60;
/** Heap may grow this much over the warmed-up baseline and must come back under it. */
const HEAP_SLACK = 48 * 1024 * 1024;

/** A made-up client address per raw connection (TRUST_PROXY is on), so per-IP limits stay out of the way. */
const someIp = () => `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;

type Tally = Map<string, number>;

/**
 * Bounded hostile input against one replica, class by class. For each input the replica must
 * answer with an error or close the connection (counted by outcome), stay up, keep a well-behaved
 * client of the same replica receiving its room without a gap, and return to its memory baseline.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`hostile input (TRANSPORT=${transport})`, () => {
    let gw: Gateway;
    let watcher: TestClient;
    let published = 0;
    let stopPublishing = false;
    let publisher: Promise<void>;
    let baselineHeap = 0;
    const report: [string, number, Tally][] = [];

    /**
     * After the input, a valid subscribe on the same connection either works, or works once the
     * namespace is joined again (the input made the client leave it, e.g. `41`), or the connection
     * is gone. Anything else is a connection left hanging.
     */
    const afterwards = async (s: RawSocket, tally: Tally, input = '') => {
      const subscribeWorks = async () => {
        const id = randomInt(1_000_000, 9_999_999);
        s.send(`42${id}["subscribe","fuzz:after"]`);
        return (await s.next((f) => f.startsWith(`43${id}`), 2000)) !== undefined;
      };
      if (s.isOpen()) {
        if (await subscribeWorks()) return bump(tally, `answered, still usable`);
        if (!s.isOpen()) return bump(tally, `closed ${await s.closed}`);
        s.send('40');
        if ((await s.next((f) => f.startsWith('40{'), 2000)) && (await subscribeWorks())) {
          return bump(tally, 'left the namespace, usable after joining again');
        }
        if (!s.isOpen()) return bump(tally, `closed ${await s.closed}`);
        console.log(`# ${transport}: open but unresponsive after ${JSON.stringify(input).slice(0, 80)}; frames: ${JSON.stringify(s.frames.slice(1)).slice(0, 300)}`);
        return bump(tally, 'open but unresponsive');
      }
      bump(tally, `closed ${await s.closed}`);
    };

    const run = async (name: string, inputs: (() => Promise<void>)[], tally: Tally = new Map()) => {
      for (const input of inputs) await input();
      report.push([name, inputs.length, tally]);
      assert.equal(tally.get('open but unresponsive') ?? 0, 0, `${name}: no connection is left hanging`);
      return tally;
    };

    before(async () => {
      gw = await startGateway({
        env: {
          TRANSPORT: transport,
          PUBLISH_KEYS: KEY,
          JWT_SECRET: SECRET,
          ALLOW_ANONYMOUS: 'true',
          PUBLIC_ROOMS: '*',
          TRUST_PROXY: 'true',
          MAX_SUBSCRIPTIONS: String(MAX_SUBSCRIPTIONS),
          CLIENT_BURST: String(BURST),
          // One token a second: the subscribe flood (well under a second) earns none back, so its
          // refusals come in one unbroken run and the disconnect follows exactly BURST of them.
          CLIENT_RATE: '1',
          CONNECT_BURST_PER_IP: '50',
          CONNECT_RATE_PER_IP: '5',
          HTTP_REQUEST_TIMEOUT_SECONDS: '1',
        },
      });
      watcher = await connectClient(gw.url, { extraHeaders: { 'x-forwarded-for': someIp() } });
      await watcher.subscribe('fuzz:watch');
      publisher = (async () => {
        while (!stopPublishing && published < 20_000) {
          const res = await publish(gw.url, { room: 'fuzz:watch', event: 'seq', data: published + 1 }, KEY);
          assert.equal(res.status, 200);
          published++;
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      await watcher.waitFor('the stream to flow', (r) => r.data === 20);
      baselineHeap = (await getJson(`${gw.url}/readyz`)).body.heapUsedBytes;
    });

    after(async () => {
      stopPublishing = true;
      await publisher?.catch(() => {});
      watcher?.close();
      await gw?.stop();
    });

    it('malformed Engine.IO packets: closed or ignored, never hanging', async () => {
      const packets = ['', 'x', '9', '7', '4', '5', '6', '1', '\u0000', 'abc', '2probe', '3', '0', '8{}', '4x', '{"type":"message"}', '\uffff', '1'.repeat(1000)];
      const tally = new Map();
      await run(
        'malformed Engine.IO packets',
        packets.map((p) => async () => {
          const s = await rawSocket(gw.url, { headers: { 'x-forwarded-for': someIp() } });
          s.send(p);
          await afterwards(s, tally);
          s.close();
        }),
        tally,
      );
    });

    it('malformed Socket.IO packets after connecting', async () => {
      const packets = [
        '42', '42[', '42{}', '42[1]', '42[null]', '42["subscribe"', '42"subscribe"', '42[{"a":1}]', '42[[]]',
        '42["subscribe",{"room":{"$gt":""}}]', '42["subscribe",{"room":"a","__proto__":{"x":1}}]', '43', '4399[]',
        '4299999999999999999999999["subscribe","a"]', '45-["publish",{"_placeholder":true,"num":0}]', '451-["x",{"_placeholder":true,"num":5}]',
        '40/admin,', '41', '44{"message":"x"}', '4x', '46', '42/nsp,["subscribe","a"]', '42["constructor"]', '42["__proto__",{}]',
        '42["publish",{"room":"a","event":"connect","data":1}]', '42["refresh",{"token":{}}]', '42["presence",[]]',
      ];
      const tally = new Map();
      await run(
        'malformed Socket.IO packets',
        packets.map((p) => async () => {
          const s = await rawSocket(gw.url, { connect: true, headers: { 'x-forwarded-for': someIp() } });
          s.send(p);
          await afterwards(s, tally, p);
          s.close();
        }),
        tally,
      );
    });

    it('invalid UTF-8 and binary frames where text is expected', async () => {
      const frames: [Buffer, boolean][] = [
        [Buffer.from([0x34, 0x32, 0xff, 0xfe, 0xfd]), false],
        [Buffer.from([0x34, 0x32, 0x5b, 0x22, 0xc3, 0x28, 0x22, 0x5d]), false],
        [Buffer.from([0xed, 0xa0, 0x80]), false],
        ...Array.from({ length: 10 }, (): [Buffer, boolean] => [randomBytes(randomInt(1, 512)), true]),
        [Buffer.from('42["subscribe","a"]'), true],
      ];
      const tally = new Map();
      await run(
        'invalid UTF-8 / unexpected binary frames',
        frames.map(([bytes, binary]) => async () => {
          const s = await rawSocket(gw.url, { connect: true, headers: { 'x-forwarded-for': someIp() } });
          s.send(bytes, binary);
          await afterwards(s, tally);
          s.close();
        }),
        tally,
      );
    });

    it('oversize frames close the connection', async () => {
      const tally = new Map();
      await run(
        'oversize frames',
        [70_000, 200_000, 1_500_000].map((size) => async () => {
          const s = await rawSocket(gw.url, { connect: true, headers: { 'x-forwarded-for': someIp() } });
          s.send(`42["publish",{"room":"fuzz:x","event":"e","data":"${'a'.repeat(size)}"}]`);
          bump(tally, `closed ${await s.closed}`);
        }),
        tally,
      );
      assert.ok([...tally.keys()].every((k) => k.startsWith('closed')), [...tally.keys()].join());
    });

    it('deeply nested JSON over Socket.IO and HTTP', async () => {
      const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
      const tally = new Map();
      await run(
        'deeply nested JSON',
        [
          ...[40, 1000, 30_000].map((depth) => async () => {
            const s = await rawSocket(gw.url, { connect: true, headers: { 'x-forwarded-for': someIp() } });
            s.send(`4271["publish",{"room":"fuzz:x","event":"e","data":${nested(depth)}}]`);
            const ack = await s.next((f) => f.startsWith('4371'), 2000);
            if (ack) bump(tally, `socket ack ${/"code":"(\w+)"/.exec(ack)?.[1] ?? ack.slice(0, 20)}`);
            else await afterwards(s, tally);
            s.close();
          }),
          ...[40, 1000, 30_000].map((depth) => async () => {
            const res = await fetch(`${gw.url}/v1/publish`, {
              method: 'POST',
              headers: { authorization: `Bearer ${KEY}` },
              body: `{"room":"fuzz:x","event":"e","data":${nested(depth)}}`,
            });
            bump(tally, `http ${res.status} ${((await res.json()) as any).error?.code}`);
          }),
        ],
        tally,
      );
      for (const k of tally.keys()) assert.ok(/bad_request|invalid_json|payload_too_large|closed/.test(k), k);
    });

    it('numbers JSON cannot carry (1e999 reads as Infinity, delivered as null): refused, not changed', async () => {
      for (const data of ['1e999', '-1e999', '{"score":[1,2e400]}']) {
        const res = await fetch(`${gw.url}/v1/publish`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: `{"room":"fuzz:x","event":"e","data":${data}}` });
        const body = (await res.json()) as { error?: { code: string; message: string } };
        assert.equal(res.status, 400, data);
        assert.equal(body.error?.code, 'bad_request', data);
        assert.match(body.error!.message, /too large for JSON/, data);
      }
      const s = await rawSocket(gw.url, { connect: true, headers: { 'x-forwarded-for': someIp() } });
      s.send('4272["publish",{"room":"fuzz:x","event":"e","data":1e999}]');
      const ack = await s.next((f) => f.startsWith('4372'), 2000);
      s.close();
      assert.ok(ack === undefined || /"code":"(bad_request|forbidden)"/.test(ack), `a client publish: ${ack}`);
    });

    it('subscription cap: one connection gets MAX_SUBSCRIPTIONS rooms, then too_many_subscriptions', async () => {
      const s = await rawSocket(gw.url, { connect: true, headers: { 'x-forwarded-for': someIp() } });
      const tally = new Map();
      for (let i = 0; i < MAX_SUBSCRIPTIONS + 5; i++) {
        s.send(`42${i}["subscribe","fuzz:cap-${i}"]`);
        const ack = await s.next((f) => f.startsWith(`43${i}[`));
        bump(tally, /"ok":true/.test(ack!) ? 'ok' : /"code":"(\w+)"/.exec(ack!)![1]!);
      }
      s.close();
      report.push(['subscriptions, one at a time', MAX_SUBSCRIPTIONS + 5, tally]);
      assert.deepEqual(Object.fromEntries(tally), { ok: MAX_SUBSCRIPTIONS, too_many_subscriptions: 5 });
    });

    it('thousands of subscribe calls at once: rate limited, then disconnected', async () => {
      const s = await rawSocket(gw.url, { connect: true, headers: { 'x-forwarded-for': someIp() } });
      const tally = new Map();
      const N = 3000;
      for (let i = 0; i < N && s.isOpen(); i++) s.send(`42${i}["subscribe","fuzz:many-${i}"]`);
      const closing = await s.closed;
      for (const f of s.frames) {
        if (f.startsWith('43')) bump(tally, /"ok":true/.test(f) ? 'ok' : /"code":"(\w+)"/.exec(f)![1]!);
        if (f.startsWith('42["herald:disconnect"')) bump(tally, `herald:disconnect ${/"code":"(\w+)"/.exec(f)![1]}`);
      }
      bump(tally, `closed ${closing}`);
      report.push(['thousands of subscribe calls at once', N, tally]);
      // Refusals are answered at once; accepted subscribes answer after their join, and those still
      // pending when the abuser is cut off are never answered.
      assert.equal(tally.get('rate_limited'), BURST);
      assert.equal(tally.get('herald:disconnect rate_limited'), 1);
      assert.ok((tally.get('ok') ?? 0) + (tally.get('too_many_subscriptions') ?? 0) <= BURST);
      assert.ok((tally.get('ok') ?? 0) <= MAX_SUBSCRIPTIONS);
    });

    it('forged tokens are refused with connect errors', async () => {
      const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const exp = Math.floor(Date.now() / 1000) + 600;
      const tokens = [
        await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(new TextEncoder().encode('wrong-secret-0123456789-abcdefghijkl')),
        `${b64({ alg: 'none' })}.${b64({ sub: 'x', exp })}.`,
        await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp - 7200).sign(new TextEncoder().encode(SECRET)),
        await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS512' }).setAudience('other').setExpirationTime(exp).sign(new TextEncoder().encode(SECRET)),
        'a.b.c', '', 'x'.repeat(10_000), '{"alg":"none"}',
      ];
      const tally = new Map();
      await run(
        'forged tokens',
        [...tokens, 123, null, ['a'], { nested: true }].map((token) => async () => {
          const s = await rawSocket(gw.url, { headers: { 'x-forwarded-for': someIp() } });
          s.send(`40${JSON.stringify({ token })}`);
          const answer = await s.next((f) => f.startsWith('40') || f.startsWith('44'));
          bump(tally, answer?.startsWith('44') ? `44 ${/"code":"(\w+)"/.exec(answer)?.[1]}` : `connected (${String(answer).slice(0, 10)})`);
          s.close();
        }),
        tally,
      );
      // Without a token (empty, null) the client is anonymous, which this replica allows.
      assert.deepEqual([...tally.keys()].sort(), ['44 token_expired', '44 unauthorized', 'connected (40{"sid":")'].sort());
    });

    it('raw HTTP garbage, slow and aborted bodies', async () => {
      const tally = new Map();
      const code = (out: string) => /^HTTP\/1\.[01] (\d{3})/.exec(out)?.[1] ?? (out === '' ? 'no answer (closed or left idle)' : `garbage reply`);
      await run(
        'raw HTTP',
        [
          'GARBAGE\r\n\r\n',
          'GET / HTTP/9.9\r\n\r\n',
          `GET /${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
          `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(200_000)}\r\n\r\n`,
          'POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
          `POST /v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: 60\r\n\r\n{"room":"a","event":"e","data":{"__proto__":{"polluted":1}}}`,
        ].map((req) => async () => {
          // uWS closes or ignores malformed requests (its own idle timeout ends those); Node answers 400/431.
          bump(tally, code(await rawHttp(gw.port, req, { idleMs: 1000 })));
        }),
        tally,
      );
      // A stalled body (1000 bytes declared, 8 sent) is answered 408 by the 1 s request timeout.
      const stalled = await rawHttp(gw.port, `POST /v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: 1000\r\n\r\n{"room":`, { idleMs: 5000 });
      bump(tally, `stalled body: ${code(stalled)}`);
      assert.equal(code(stalled), '408');
      // Aborted mid-body: nothing to answer; the replica must simply carry on.
      for (let i = 0; i < 20; i++) {
        await rawHttp(gw.port, `POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\n${'x'.repeat(100)}`, { idleMs: 10 });
      }
      assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
    });

    it('a connection flood from one address is cut by the per-IP limit', async () => {
      const tally = new Map();
      const ip = someIp();
      await run(
        'connection flood from one IP',
        Array.from({ length: 120 }, () => async () => {
          const res = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`, { headers: { 'x-forwarded-for': ip } });
          const body = await res.text();
          bump(tally, res.status === 200 ? 'accepted' : `${res.status} ${/"message":"(\w+)"/.exec(body)?.[1]}`);
        }),
        tally,
      );
      assert.ok((tally.get('accepted') ?? 0) >= 50 && (tally.get('403 rate_limited') ?? 0) >= 50, [...tally].join());
      // Another address is unaffected.
      assert.equal((await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`, { headers: { 'x-forwarded-for': someIp() } })).status, 200);
    });

    it('leaves the replica serving: no gap for the well-behaved client, memory back to baseline', async () => {
      stopPublishing = true;
      await publisher;
      await watcher.waitFor('the last message', (r) => r.data === published);
      const seq = watcher.received.filter((r) => r.event === 'seq').map((r) => r.data as number);
      assert.deepEqual(seq, Array.from({ length: published }, (_, i) => i + 1), 'every message, in order, once');
      assert.equal(gw.process.exitCode, null);
      const heap = await waitFor(
        'heap back near its baseline',
        async () => {
          const h = (await getJson(`${gw.url}/readyz`)).body.heapUsedBytes as number;
          return h <= baselineHeap + HEAP_SLACK ? h : undefined;
        },
        20_000,
      );
      console.log(`# ${transport}: watcher got ${published}/${published} in order; heap ${mb(baselineHeap)} MiB before, ${mb(heap)} MiB after`);
      for (const [name, tried, tally] of report) {
        console.log(`# ${transport}: ${name}: ${tried} tried -> ${[...tally].map(([k, v]) => `${k}: ${v}`).join(', ')}`);
      }
    });
  });
}

function bump(tally: Tally, key: string): void {
  tally.set(key, (tally.get(key) ?? 0) + 1);
}

function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}
