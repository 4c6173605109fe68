import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import WebSocket from 'ws';
import { connectClient, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { onceWithin, waitFor } from './helpers/wait.js';

const USER = 'admin';
const PASSWORD = 'right-password-0123';
/** Cost 10, as the hashing command of docs/reference/operations.md (Admin UI): ~100 ms of CPU per comparison. */
const HASH = bcrypt.hashSync(PASSWORD, 10);
const guess = (password: string, username = USER) => `40/admin,${JSON.stringify({ username, password })}`;

/** An answer of the /admin namespace to a CONNECT: accepted, or the refusal's `data.code`. */
type Answer = 'accepted' | string;
function answerOf(packet: string): Answer | undefined {
  if (packet.startsWith('40/admin,')) return 'accepted';
  if (!packet.startsWith('44/admin,')) return undefined;
  return (JSON.parse(packet.slice('44/admin,'.length)) as { data?: { code?: string } }).data?.code ?? 'no code';
}

function count(answers: Answer[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of answers) out[a] = (out[a] ?? 0) + 1;
  return out;
}

/** An HTTP request from `localAddress`, so each test attacks from its own client address. */
function http(url: string, localAddress: string, method: 'GET' | 'POST', body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, localAddress, agent: false, headers: body ? { 'content-type': 'text/plain;charset=UTF-8' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * One Engine.IO long-polling connection spoken by hand: a GET loop collects every packet the
 * server sends, in the order it sent them; `post` sends packets in one body, as the attack did.
 */
async function pollingConnection(base: string, localAddress: string) {
  const open = await http(`${base}/socket.io/?EIO=4&transport=polling`, localAddress, 'GET');
  assert.equal(open.status, 200, open.text);
  const sid = (JSON.parse(open.text.slice(1)) as { sid: string }).sid;
  const url = `${base}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
  const packets: string[] = [];
  let closed = false;
  let ended = false;
  void (async () => {
    while (!closed) {
      const res = await http(url, localAddress, 'GET').catch(() => undefined);
      if (!res || res.status !== 200) {
        ended = true;
        break;
      }
      for (const p of res.text.split('\x1e')) {
        if (p === '2') void http(url, localAddress, 'POST', '3').catch(() => {});
        else packets.push(p);
      }
    }
  })();
  return {
    packets,
    /** True once the server has closed the connection. */
    ended: () => ended,
    answers: () => packets.map(answerOf).filter((a): a is Answer => a !== undefined),
    async post(...out: string[]) {
      const res = await http(url, localAddress, 'POST', out.join('\x1e'));
      assert.equal(res.status, 200, res.text);
    },
    close() {
      closed = true;
      void http(url, localAddress, 'POST', '1').catch(() => {});
    },
  };
}

/** An Engine.IO WebSocket from `localAddress`; `connect` sends one CONNECT and resolves with the answer. */
async function wsConnection(base: string, localAddress: string) {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`, { localAddress });
  const packets: string[] = [];
  const waiters = new Set<() => void>();
  ws.on('message', (data) => {
    const text = data.toString();
    if (text === '2') ws.send('3');
    packets.push(text);
    for (const w of waiters) w();
  });
  ws.on('error', () => {});
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  await onceWithin(ws, 'open', 'admin WebSocket open');
  const next = (match: (p: string) => boolean, from: number) =>
    waitFor(`an /admin packet (received: ${packets.join(' | ')})`, () => packets.slice(from).find(match));
  await next((p) => p.startsWith('0{'), 0);
  return {
    packets,
    /** Sends one CONNECT packet and resolves with its answer. */
    async connect(packet: string): Promise<Answer> {
      const from = packets.length;
      ws.send(packet);
      return answerOf(await next((p) => answerOf(p) !== undefined, from))!;
    },
    next: (match: (p: string) => boolean) => next(match, 0),
    /** Sends a packet without waiting for an answer. */
    send: (packet: string) => ws.send(packet),
    /** Resolves when the server has closed the connection. */
    closed,
    close: () => ws.terminate(),
  };
}

/** Password checks the gateway ran for `address` (its debug log). */
const checksFrom = (gw: Gateway, address: string) =>
  gw.logs.filter((l) => l.msg === 'admin UI password checked' && String(l.address).endsWith(address)).length;

describe('admin UI login (@socket.io/admin-ui behind herald\'s limits)', () => {
  let gw: Gateway;
  const closers: (() => void)[] = [];

  before(async () => {
    gw = await startGateway({ env: { ADMIN_UI_USERNAME: USER, ADMIN_UI_PASSWORD_HASH: HASH, LOG_LEVEL: 'debug' } });
  });

  after(async () => {
    for (const close of closers) close();
    await gw?.stop();
  });

  it('checks only the first guesses of 300 in one polling POST and refuses the rest at once, the right password included', async () => {
    const conn = await pollingConnection(gw.url, '127.0.0.2');
    closers.push(conn.close);
    const packets = Array.from({ length: 299 }, (_, i) => guess(`wrong-${i}`));
    await conn.post(...packets, guess(PASSWORD));
    // herald closes a connection that sends a second CONNECT for a namespace while one is pending,
    // which ends this early; the per-connection limit must hold either way.
    await waitFor('an answer to each of the 300 CONNECT packets', () => conn.answers().length === 300 || conn.ended());
    const counts = count(conn.answers());
    assert.equal(counts.accepted, undefined, 'the right password, past the limit, is refused too');
    // Three checks (ADMIN_UI_LOGINS_PER_CONNECTION): bcrypt ran for those only.
    if (!conn.ended()) assert.deepEqual(counts, { unauthorized: 3, rate_limited: 297 });
    else assert.ok((counts.unauthorized ?? 0) <= 3, JSON.stringify(counts));
    await waitFor('the checks logged', () => checksFrom(gw, '127.0.0.2') >= (counts.unauthorized ?? 0));
    assert.equal(checksFrom(gw, '127.0.0.2'), counts.unauthorized ?? 0, 'a password check for each unauthorized answer, none for the others');
  });

  it('allows a few guesses per connection, then refuses at once; the right password works on a fresh connection, its session after that', async () => {
    const conn = await wsConnection(gw.url, '127.0.0.3');
    closers.push(conn.close);
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await conn.connect(guess(`wrong-${i}`)));
    assert.deepEqual(answers, ['unauthorized', 'unauthorized', 'unauthorized', 'rate_limited', 'rate_limited']);
    // A sixth CONNECT on one connection is past what any client sends: the connection is closed.
    conn.send(guess(PASSWORD));
    await conn.closed;
    assert.equal(conn.packets.map(answerOf).filter((a) => a !== undefined).length, 5, 'the sixth attempt got no answer but a closed connection');

    const fresh = await wsConnection(gw.url, '127.0.0.3');
    closers.push(fresh.close);
    assert.equal(await fresh.connect(guess(PASSWORD)), 'accepted');
    const session = await fresh.next((p) => p.startsWith('42/admin,["session"'));
    const [, sessionId] = JSON.parse(session.slice('42/admin,'.length)) as [string, string];
    await waitFor('four password checks logged', () => checksFrom(gw, '127.0.0.3') === 4);

    // As the admin UI does when it reconnects: the session id instead of the password.
    const again = await wsConnection(gw.url, '127.0.0.3');
    closers.push(again.close);
    assert.equal(await again.connect(`40/admin,${JSON.stringify({ sessionId })}`), 'accepted');
    const unknown = await wsConnection(gw.url, '127.0.0.3');
    closers.push(unknown.close);
    assert.equal(await unknown.connect(`40/admin,${JSON.stringify({ sessionId: 'f'.repeat(32) })}`), 'unauthorized');
    assert.equal(checksFrom(gw, '127.0.0.3'), 4, 'a session costs no password check');
  });

  it('limits guesses per client address across connections', async () => {
    // 15 handshakes at once from one address, one guess each (80 of them stalled a replica 3.7 s).
    const conns = await Promise.all(Array.from({ length: 15 }, () => wsConnection(gw.url, '127.0.0.4')));
    for (const c of conns) closers.push(c.close);
    const pending = conns.map((c, i) => c.connect(guess(`wrong-${i}`)));
    // The five over ADMIN_UI_LOGINS_PER_IP are refused without waiting for the ten being checked.
    const answers: Answer[] = [];
    for (const p of pending) void p.then((a) => answers.push(a));
    await waitFor('the five over the limit refused', () => answers.filter((a) => a === 'rate_limited').length === 5);
    const late = await wsConnection(gw.url, '127.0.0.4');
    closers.push(late.close);
    assert.equal(await late.connect(guess(PASSWORD)), 'rate_limited', 'the address has spent its attempts, on any connection');

    await Promise.all(pending);
    assert.deepEqual(count(answers), { unauthorized: 10, rate_limited: 5 });
    await waitFor('ten password checks logged', () => checksFrom(gw, '127.0.0.4') === 10);
    // Another address has its own budget.
    const other = await wsConnection(gw.url, '127.0.0.5');
    closers.push(other.close);
    assert.equal(await other.connect(guess(PASSWORD)), 'accepted');
  });
});

describe('admin UI login under a burst of guesses', () => {
  let gw: Gateway;
  let client: TestClient | undefined;
  const closers: (() => void)[] = [];

  before(async () => {
    // The per-address limit raised so that 16 connections put 16 checks in flight at once (the queue's bound).
    gw = await startGateway({ env: { ADMIN_UI_USERNAME: USER, ADMIN_UI_PASSWORD_HASH: HASH, ADMIN_UI_LOGINS_PER_IP: '16' } });
  });

  after(async () => {
    client?.close();
    for (const close of closers) close();
    await gw?.stop();
  });

  it('keeps serving other clients while the guesses are checked', async () => {
    client = await connectClient(gw.url);
    // One guess per connection: a second CONNECT in flight would close the connection.
    const total = 16;
    const conns = await Promise.all(Array.from({ length: total }, (_, i) => wsConnection(gw.url, '127.0.0.6')));
    for (const c of conns) closers.push(c.close);
    const answered = () => conns.filter((c) => c.packets.some((p) => answerOf(p) !== undefined)).length;
    conns.forEach((c, i) => c.send(guess(`wrong-${i}`)));
    // The first answer shows the checks have started; the round-trip runs while the rest wait.
    await waitFor('the first guess answered', () => answered() > 0);
    assert.deepEqual(await client.subscribe('admin-test:room'), { ok: true, room: 'admin-test:room' });
    const res = await publish(gw.url, { room: 'admin-test:room', event: 'probe', data: 1 });
    assert.equal(res.status, 200);
    await client.waitFor('the published message', (r) => r.event === 'probe');
    const answeredMeanwhile = answered();
    assert.ok(
      answeredMeanwhile < total,
      `the subscribe/publish round-trip completed only after all ${total} guesses were answered: bcrypt held the event loop`,
    );
    await waitFor('every guess answered', () => answered() === total);
    assert.deepEqual(count(conns.map((c) => c.packets.map(answerOf).find((a) => a !== undefined)!)), { unauthorized: total });
  });
});
