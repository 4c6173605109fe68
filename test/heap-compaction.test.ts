import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { runGatewayToExit, startGateway, type Gateway } from './helpers/gateway.js';

const V8_FLAGS = fileURLToPath(new URL('./fixtures/v8-flags.cjs', import.meta.url));

/** HEAP_COMPACTION (src/main.ts): V8 compacts on every full GC unless told `auto`. */
describe('HEAP_COMPACTION', () => {
  const gateways: Gateway[] = [];
  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
  });

  it('sets V8 to compact on every full GC by default, before the gateway listens', async () => {
    const gw = await startGateway({ nodeArgs: ['--require', V8_FLAGS] });
    gateways.push(gw);
    const flagged = gw.logs.findIndex((l) => l.msg === 'v8 flags set' && l.flags === '--compact-on-every-full-gc');
    const listening = gw.logs.findIndex((l) => l.msg === 'listening');
    assert.ok(flagged >= 0, `the flag is set: ${JSON.stringify(gw.logs.filter((l) => l.msg === 'v8 flags set'))}`);
    assert.ok(flagged < listening, 'before the gateway listens');
  });

  it('leaves V8 to its heuristics with HEAP_COMPACTION=auto', async () => {
    const gw = await startGateway({ nodeArgs: ['--require', V8_FLAGS], env: { HEAP_COMPACTION: 'auto' } });
    gateways.push(gw);
    assert.deepEqual(gw.logs.filter((l) => l.msg === 'v8 flags set'), []);
  });

  it('refuses a value it does not know, naming the setting', async () => {
    const bad = await runGatewayToExit({ HEAP_COMPACTION: 'sometimes' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /HEAP_COMPACTION must be one of always, auto/);
  });
});
