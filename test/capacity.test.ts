import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect as tcpConnect, type Socket as NetSocket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { defaultMaxConnections, descriptorReserve, effectiveMaxConnections, softDescriptorLimit } from '../src/limits/descriptors.js';
import { acceptThresholds, AcceptGuard } from '../src/transport/accept-guard.js';
import { connectClient, type TestClient } from './helpers/clients.js';
import { attempt, upgradeHead, type HandshakeAttempt } from './helpers/raw.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { waitFor } from './helpers/wait.js';

/** The descriptor limit the gateways run under: small, so a test can reach it. */
const NOFILE = 300;
const ENV = { CONNECT_RATE_PER_IP: '100000', CONNECT_BURST_PER_IP: '100000' };

const cpuSeconds = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
const openFds = (pid: number): number => statSync(`/proc/${pid}/fd`).size;

const pollingHead = 'GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: herald\r\n\r\n';

/** GET or POST on a kept-alive connection (opened before a flood, it still works while the port accepts nothing). */
function http(agent: Agent, port: number, method: string, path: string, body?: object): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const json = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers: json ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(json);
  });
}

const metric = (text: string, name: string): number | undefined => {
  const m = new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};

describe('descriptor limits: reading and deriving the cap', () => {
  it('reads the soft limit from a limits file and derives MAX_CONNECTIONS under it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-limits-'));
    try {
      const file = join(dir, 'limits');
      writeFileSync(file, 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n');
      assert.equal(softDescriptorLimit(file), 1024);
      writeFileSync(file, 'Max open files            unlimited            unlimited            files\n');
      assert.equal(softDescriptorLimit(file), undefined);
      assert.equal(softDescriptorLimit(join(dir, 'missing')), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(descriptorReserve(300), 64, 'at least 64');
    assert.equal(descriptorReserve(20_000), 1000, '5 %');
    assert.equal(descriptorReserve(1_048_576), 1024, 'at most 1,024');
    assert.equal(defaultMaxConnections(20_000), 19_000);
    assert.equal(defaultMaxConnections(undefined), undefined);
    assert.deepEqual(effectiveMaxConnections(0, 20_000), { max: 19_000, lowered: false });
    assert.deepEqual(effectiveMaxConnections(5000, 20_000), { max: 5000, lowered: false });
    assert.deepEqual(effectiveMaxConnections(50_000, 20_000), { max: 19_000, lowered: true });
    assert.deepEqual(effectiveMaxConnections(50_000, undefined), { max: 50_000, lowered: false });
  });

  it('the guard closes the listen socket near the limit and opens it again below the low-water mark', () => {
    let open = 0;
    const calls: string[] = [];
    let bindable = true;
    const guard = new AcceptGuard(
      NOFILE,
      { pause: () => calls.push('pause'), resume: () => (calls.push('resume'), bindable) },
      { paused: (n) => calls.push(`paused ${n}`), resumed: (n) => calls.push(`resumed ${n}`), resumeFailed: (n) => calls.push(`failed ${n}`) },
      () => open,
    );
    const { pauseAt, resumeAt } = acceptThresholds(NOFILE);
    assert.ok(resumeAt < pauseAt && pauseAt < NOFILE);
    for (open of [10, pauseAt - 1, pauseAt, NOFILE, resumeAt + 1]) guard.check();
    assert.deepEqual(calls, ['pause', `paused ${pauseAt}`]);
    assert.equal(guard.accepting, false);
    bindable = false;
    open = resumeAt;
    guard.check();
    assert.equal(guard.accepting, false, 'a port it could not bind again stays paused');
    bindable = true;
    guard.check();
    assert.equal(guard.accepting, true);
    assert.deepEqual(calls.slice(2), ['resume', `failed ${resumeAt}`, 'resume', `resumed ${resumeAt}`]);
  });
});

for (const transport of ['uws', 'node'] as const) {
  describe(`a replica at its limits (${transport})`, () => {
    const started: Gateway[] = [];
    const clients: TestClient[] = [];
    const sockets: NetSocket[] = [];
    after(async () => {
      for (const s of sockets) s.destroy();
      for (const c of clients) c.close();
      await Promise.all(started.map((g) => g.stop()));
    });

    it('refuses handshakes past MAX_CONNECTIONS with 503 over_capacity and closes them; its clients are untouched', async () => {
      const gw = await startGateway({ nofile: NOFILE, env: { ...ENV, TRANSPORT: transport } });
      started.push(gw);
      const cap = defaultMaxConnections(NOFILE)!;
      const existing = await connectClient(gw.url);
      clients.push(existing);
      assert.deepEqual(await existing.subscribe('cap:room'), { ok: true, room: 'cap:room' });

      // One at a time, so the count at the cap is exact; the existing client holds one.
      let accepted = 0;
      const refused: HandshakeAttempt[] = [];
      for (let i = 0; i < cap - 1 + 20; i++) {
        const a = await attempt(gw.port, upgradeHead());
        sockets.push(a.socket);
        if (a.status === 101) accepted++;
        else refused.push(a);
      }
      assert.equal(accepted, cap - 1, 'upgrades up to the cap, derived from the descriptor limit the process runs under');
      assert.equal(refused.length, 20);
      const polling = await attempt(gw.port, pollingHead);
      refused.push(polling);
      for (const r of refused) {
        assert.equal(r.status, 503);
        assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'over_capacity');
        assert.equal(await r.closedByServer, true, 'the refused connection is closed by the replica');
      }

      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const metrics = (await http(agent, gw.port, 'GET', '/metrics')).text;
      assert.equal(metric(metrics, 'herald_connections_refused_total{reason="capacity"}'), 21, 'the 20 upgrades and the polling handshake');
      assert.equal(metric(metrics, 'herald_connections_max'), cap);
      assert.equal((await gw.waitForLog('connection cap', (l) => l.msg === 'connection cap')).maxConnections, cap);
      assert.equal((await http(agent, gw.port, 'GET', '/healthz')).status, 200);
      assert.equal((await http(agent, gw.port, 'POST', '/v1/publish', { room: 'cap:room', event: 'score', data: 1 })).status, 200);
      await existing.waitFor('the publish', (r) => r.data === 1);

      // Below the cap again, handshakes pass.
      for (const s of sockets.splice(0, 5)) s.destroy();
      await waitFor('a handshake to pass again', async () => (await attempt(gw.port, upgradeHead())).status === 101);
      agent.destroy();
    });

    it('stops accepting, without spinning, when connections that never finish a handshake take every descriptor', async () => {
      for (const s of sockets.splice(0)) s.destroy();
      const gw = await startGateway({ nofile: NOFILE, env: { ...ENV, TRANSPORT: transport } });
      started.push(gw);
      const pid = gw.process.pid!;
      const existing = await connectClient(gw.url);
      clients.push(existing);
      await existing.subscribe('flood:room');
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      assert.equal((await http(agent, gw.port, 'GET', '/healthz')).status, 200);

      // More silent connections than the replica has descriptors: each one it accepts holds one.
      const flood = await Promise.all(
        Array.from({ length: NOFILE + 100 }, () => new Promise<NetSocket>((resolve) => {
          const s = tcpConnect(gw.port, '127.0.0.1');
          s.on('error', () => {});
          s.once('connect', () => resolve(s));
          s.once('close', () => resolve(s));
        })),
      );
      sockets.push(...flood);
      await waitFor('descriptors to run out', () => openFds(pid) >= acceptThresholds(NOFILE).pauseAt);

      const before = cpuSeconds(pid);
      await delay(2000);
      const used = cpuSeconds(pid) - before;
      // Spinning on EMFILE took ~0.9 s of CPU per second here; an idle replica takes ~0.01.
      assert.ok(used < 0.3, `CPU over 2 s with descriptors gone: ${used} s`);

      assert.equal((await http(agent, gw.port, 'GET', '/healthz')).status, 200, 'a kept-alive connection is still served');
      assert.equal((await http(agent, gw.port, 'POST', '/v1/publish', { room: 'flood:room', event: 'score', data: 2 })).status, 200);
      await existing.waitFor('the publish during the flood', (r) => r.data === 2);

      if (transport === 'uws') await gw.waitForLog('stopped accepting', (l) => l.msg.startsWith('file descriptors nearly gone'));
      for (const s of flood) s.destroy();
      if (transport === 'uws') await gw.waitForLog('accepting again', (l) => l.msg === 'accepting connections again');
      const late = await connectClient(gw.url);
      clients.push(late);
      await late.subscribe('flood:room');
      assert.equal((await http(agent, gw.port, 'POST', '/v1/publish', { room: 'flood:room', event: 'score', data: 3 })).status, 200);
      await late.waitFor('the publish after the flood', (r) => r.data === 3);
      if (transport === 'uws') {
        const text = (await http(agent, gw.port, 'GET', '/metrics')).text;
        assert.ok((metric(text, 'herald_accept_pauses_total') ?? 0) >= 1);
        assert.equal(metric(text, 'herald_accepting'), 1);
      }
      agent.destroy();
    });
  });
}
