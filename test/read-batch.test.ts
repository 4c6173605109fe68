import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { linkTiming } from '../src/cluster/link.js';
import { batchedReads } from '../src/cluster/read-batch.js';
import { createRedisPair, type RedisPair } from '../src/cluster/redis.js';
import { createLogger } from '../src/observability/logger.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

/**
 * The reads of one turn in one write (src/cluster/read-batch.ts), on herald's own publisher client
 * against a real redis-server: answers as the commands alone give them, failures as they fail
 * alone, and no batch waiting on another.
 */
describe('reads batched per turn', () => {
  let redis: RedisProcess;
  let pair: RedisPair;

  before(async () => {
    redis = await startRedis();
    pair = createRedisPair({ url: redis.url }, { timing: linkTiming(2000), replicaId: 'reads', logger: createLogger('error', 'reads') });
    await waitFor('the Redis pair ready', () => pair.isReady());
  });
  after(async () => {
    await pair.close(1000);
    await redis.stop();
  });

  it('sends the reads of one turn in one write, each answered as alone', async () => {
    const keys = Array.from({ length: 50 }, (_, i) => `reads-k${i}`);
    for (const [i, k] of keys.entries()) await pair.pub.set(k, String(i));
    for (let i = 0; i < 5; i++) await pair.pub.xadd('reads-s', `${i + 1}-0`, 'n', String(i));
    // The real connection's socket, watched (not replaced): how many writes carry the reads.
    const stream = (pair.pub as unknown as { stream: { write: (...args: unknown[]) => boolean } }).stream;
    const write = stream.write;
    let writes = 0;
    stream.write = function (this: unknown, ...args: unknown[]) {
      writes += 1;
      return write.apply(this, args);
    };
    try {
      const reads = batchedReads(pair.pub);
      const gets = keys.map((k) => reads.get(k));
      const missing = reads.get('reads-none');
      const ranges = [reads.xrange('reads-s', '2-0', '+', 'COUNT', 2), reads.xrange('reads-none', '-', '+', 'COUNT', 10)];
      assert.deepEqual(await Promise.all(gets), keys.map((_, i) => String(i)));
      assert.equal(await missing, null);
      assert.deepEqual(await Promise.all(ranges), [
        [['2-0', ['n', '1']], ['3-0', ['n', '2']]],
        [],
      ]);
      assert.equal(writes, 1, `53 reads of one turn went in ${writes} writes`);
      // A command of the wrong type fails alone; the others of its turn are answered.
      const [bad, good] = await Promise.allSettled([reads.xrange('reads-k0', '-', '+', 'COUNT', 1), reads.get('reads-k1')]);
      assert.equal(bad.status, 'rejected');
      assert.match(String((bad as PromiseRejectedResult).reason), /WRONGTYPE/);
      assert.deepEqual(good, { status: 'fulfilled', value: '1' });
    } finally {
      stream.write = write;
    }
  });

  it('fails at once while Redis is away, and a turn left unanswered by a dropped link holds no later one', async () => {
    const reads = batchedReads(pair.pub);
    // In flight when the link drops: Redis holds every client's commands (CLIENT PAUSE), the read
    // is written and left unanswered, Redis dies; it is not resent after the reconnect and waits
    // for its command timeout.
    const pauser = pair.sub.duplicate();
    await pauser.call('CLIENT', 'PAUSE', '10000', 'ALL');
    pauser.disconnect();
    let firstSettled = false;
    const first = reads.get('reads-k2').finally(() => (firstSettled = true));
    first.catch(() => {});
    await new Promise((resolve) => setImmediate(resolve)); // the turn ends: its pipeline is written
    await redis.kill();
    await waitFor('the publisher sees Redis gone', () => pair.pub.status !== 'ready');
    // While Redis is away: no offline queue, so a read fails at once instead of waiting.
    await assert.rejects(reads.get('reads-k3'));
    await redis.restart();
    await waitFor('the Redis pair ready again', () => pair.isReady());
    // A fresh Redis (nothing persisted): the key is gone, and the answer comes while the read
    // lost with the old link may still be waiting for its timeout.
    assert.equal(await reads.get('reads-k4'), null);
    // With ioredis's auto-pipelining it would have waited behind the lost one, until its timeout.
    assert.ok(!firstSettled, 'the read lost with the old link was still waiting for its timeout');
    await assert.rejects(first, /timed out/);
  });
});
