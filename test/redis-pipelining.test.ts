import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createHeartbeat, type Heartbeat } from '../src/cluster/heartbeat.js';
import { linkTiming } from '../src/cluster/link.js';
import { createRedisPair, type RedisPair } from '../src/cluster/redis.js';
import { createLogger } from '../src/observability/logger.js';
import { createRedisPresence } from '../src/presence/redis.js';
import type { PresenceBackend } from '../src/presence/types.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

// herald's publisher auto-pipelines (src/cluster/redis.ts): single commands wait for the end of
// the turn and go in one write, while a MULTI goes out at once. Whatever is called in one turn
// must still reach Redis in the order it was called, where order matters.
describe('the auto-pipelined publisher', () => {
  let redis: RedisProcess;
  let pair: RedisPair;
  let heartbeat: Heartbeat;
  let presence: PresenceBackend;
  const logger = createLogger('warn', 'pipelining');

  before(async () => {
    redis = await startRedis();
    pair = createRedisPair({ url: redis.url }, { timing: linkTiming(2000), replicaId: 'pipelining', logger });
    await waitFor('the Redis pair ready', () => pair.isReady());
    heartbeat = createHeartbeat({ redis: pair.pub, keyPrefix: 'pipe', replicaId: 'r1', ttlSeconds: 30, logger });
    await heartbeat.beat();
    presence = createRedisPresence({ redis: pair.pub, keyPrefix: 'pipe', heartbeat, logger });
  });
  after(async () => {
    await heartbeat.close();
    await pair.close(1000);
    await redis.stop();
  });

  it('puts the commands of one turn in one write, in order', async () => {
    // The real connection's socket, watched (not replaced): how many writes carry the commands.
    const stream = (pair.pub as unknown as { stream: { write: (...args: unknown[]) => boolean } }).stream;
    const write = stream.write;
    let writes = 0;
    stream.write = function (this: unknown, ...args: unknown[]) {
      writes += 1;
      return write.apply(this, args);
    };
    try {
      const keys = Array.from({ length: 50 }, (_, i) => `pipe-k${i}`);
      // One turn: fifty SETs and then fifty GETs of the same keys, nothing awaited in between.
      const sets = keys.map((k, i) => pair.pub.set(k, String(i)));
      const gets = keys.map((k) => pair.pub.get(k));
      await Promise.all(sets);
      assert.deepEqual(await Promise.all(gets), keys.map((_, i) => String(i)));
      assert.equal(writes, 1, `100 commands of one turn went in ${writes} writes`);
    } finally {
      stream.write = write;
    }
  });

  it('keeps a presence removal and a re-add of the same socket in one turn in order', async () => {
    const member = { client: 'sock-1', user: 'ann' };
    // remove, then add again, without waiting: the member is there at the end.
    await presence.add('room-a', member);
    await Promise.all([presence.remove('room-a', member.client), presence.add('room-a', member)]);
    assert.equal((await presence.get('room-a')).connections, 1);
    // add, remove, add: there.
    await Promise.all([presence.add('room-b', member), presence.remove('room-b', member.client), presence.add('room-b', member)]);
    assert.equal((await presence.get('room-b')).connections, 1);
    // add, then remove: gone.
    await Promise.all([presence.add('room-c', member), presence.remove('room-c', member.client)]);
    assert.equal((await presence.get('room-c')).connections, 0);
  });
});
