import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runScale } from '../bench/scale/scenario.js';

/**
 * The scale scenario of `npm run bench:scale`, small: 5,000 fans of a live-score page on two
 * replicas + Redis, a broadcast to all, then kill -9 of the replica holding the most while the
 * broadcast runs. Outcomes only: everyone connected, every broadcast reached everyone, everyone
 * came back, no history message lost, none twice, no fan locked out by per-IP limits.
 */
describe('scale scenario (small)', () => {
  it('5,000 fans: all connected, every broadcast delivered, all back after a kill -9 with every history message once', async () => {
    const r = await runScale({
      connections: 5000,
      replicas: 2,
      clientProcesses: 2,
      matches: 50,
      idleSeconds: 1,
      rssSettleSeconds: 0,
      broadcastSeconds: 5,
      stormSeconds: 12,
      stormAtSeconds: 3,
      storms: ['kill'],
      rates: { broadcast: 1, match: 20, user: 10 },
      env: {},
      localAddresses: 16,
      connectTimeoutSeconds: 120,
      backTimeoutSeconds: 90,
      log: () => {},
    });
    assert.equal(r.connect.live, 5000);
    const [broadcast] = r.broadcasts;
    assert.equal(broadcast?.broadcasts, 5);
    assert.equal(broadcast.complete, 5, 'every broadcast reached every fan live');
    const [kill] = r.storms;
    assert.ok(kill);
    assert.ok(kill.victimConnections > 0 && kill.droppedFans === kill.victimConnections, `dropped ${kill.droppedFans} of ${kill.victimConnections}`);
    assert.notEqual(kill.allBackSeconds, undefined, 'every dropped fan back and subscribed');
    assert.equal(kill.droppedComplete, kill.droppedFans, 'every dropped fan holds every history message');
    assert.equal(kill.sinceNotRecovered, 0);
    assert.equal(kill.resets, 0);
    assert.equal(r.totals.notLiveAtEnd, 0, 'every fan live at the end');
    assert.equal(r.totals.missingAll + r.totals.missingMatch, 0, 'no history message missing');
    assert.equal(r.totals.duplicates, 0);
    assert.deepEqual(r.totals.publishFailures, {});
    assert.equal(r.connect.refusals['403'] ?? 0, 0, 'per-IP limits (TRUST_PROXY) locked nobody out while connecting');
    assert.equal(kill.refusals['403'] ?? 0, 0, 'nor while reconnecting');
  });

  it('the ceiling (raw uWS processes in the replicas\' place, bench:scale\'s comparison): 2,000 fans connected, every broadcast and match update delivered once, and the fans of a process killed with -9 back through the balancer', async () => {
    const r = await runScale({
      server: 'ceiling',
      connections: 2000,
      replicas: 2,
      clientProcesses: 2,
      matches: 20,
      idleSeconds: 1,
      rssSettleSeconds: 0,
      broadcastSeconds: 3,
      stormSeconds: 8,
      stormAtSeconds: 2,
      // The ceiling has nothing to drain: only the kill runs.
      storms: ['kill', 'drain'],
      rates: { broadcast: 1, match: 20, user: 0 },
      env: {},
      localAddresses: 16,
      connectTimeoutSeconds: 120,
      backTimeoutSeconds: 60,
      log: () => {},
    });
    assert.equal(r.connect.live, 2000);
    const [broadcast] = r.broadcasts;
    assert.equal(broadcast?.broadcasts, 3);
    assert.equal(broadcast.complete, 3, 'every broadcast reached every fan: each publish went to both processes');
    assert.ok(broadcast.publishes >= 3 + 20 * 2, `publishes ${broadcast.publishes}`);
    assert.deepEqual(r.storms.map((s) => s.kind), ['kill'], 'the kill only');
    const [kill] = r.storms;
    assert.ok(kill!.victimConnections > 0 && kill!.droppedFans === kill!.victimConnections, `dropped ${kill!.droppedFans} of ${kill!.victimConnections}`);
    assert.notEqual(kill!.allBackSeconds, undefined, 'every dropped fan back and subscribed');
    assert.equal(r.totals.notLiveAtEnd, 0, 'every fan live at the end');
    // No missing count is asserted: the ceiling keeps no history, so the killed process's fans
    // miss what was published while they were out.
    assert.equal(r.totals.duplicates, 0);
    assert.deepEqual(r.totals.publishFailures, {});
  });
});
