import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { connectClient, getJson, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';

const NO_UWS = fileURLToPath(new URL('./fixtures/no-uws.cjs', import.meta.url));

describe('embedded default: one node, no Redis, no keys', () => {
  const gateways: Gateway[] = [];
  const clients: TestClient[] = [];
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(gateways.map((g) => g.stop()));
  });

  for (const transport of ['uws', 'node'] as const) {
    it(`serves subscribers and loopback publishes with the in-memory adapter (TRANSPORT=${transport})`, async () => {
      const gw = await startGateway({ env: { TRANSPORT: transport } });
      gateways.push(gw);
      await gw.waitForLog('keys warning', (l) => l.level === 40 && /PUBLISH_KEYS is not set/.test(l.msg));
      const ready = await getJson(`${gw.url}/readyz`);
      assert.equal(ready.status, 200);
      assert.equal(ready.body.redis, 'none');

      const c = await connectClient(gw.url, { transport: 'polling' });
      clients.push(c);
      assert.deepEqual(await c.subscribe('scores:1'), { ok: true, room: 'scores:1' });
      const res = await publish(gw.url, { room: 'scores:1', event: 'goal', data: { team: 'home' } });
      assert.equal(res.status, 200, 'no key needed from loopback when no keys are configured');
      const got = await c.waitFor('goal', (r) => r.event === 'goal');
      assert.deepEqual(got.data, { team: 'home' });
      assert.deepEqual(got.meta, { room: 'scores:1', id: res.body.id, ts: res.body.ts });
    });
  }

  it('falls back to the Node transport, with one warning, when uWebSockets.js cannot load', async () => {
    const gw = await startGateway({ nodeArgs: ['--require', NO_UWS], env: { TRANSPORT: 'uws' } });
    gateways.push(gw);
    const listening = await gw.waitForLog('listening', (l) => l.msg === 'listening');
    assert.equal(listening.transport, 'node');
    const warnings = gw.logs.filter((l) => /uWebSockets\.js/.test(l.msg));
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.level, 40);
    assert.match(String(warnings[0]!.err), /simulated/);

    const c = await connectClient(gw.url);
    clients.push(c);
    await c.subscribe('fallback');
    assert.equal((await publish(gw.url, { room: 'fallback', event: 'ok', data: 1 })).status, 200);
    await c.waitFor('delivery over the fallback transport', (r) => r.event === 'ok');
  });
});
