import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { Journal, lastShared, parseOffset } from '../src/recovery/journal.js';
import { createMemorySessionStore, createRedisSessionStore, type StoredSession } from '../src/recovery/store.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';

/** `n`-0 style ids for seq n, so answers read as the seq they came from. */
const id = (seq: number) => `${1000 + seq}-0`;

function session(rooms: string[]): StoredSession {
  return { v: 1, sid: 'sid', epoch: 'e', at: Date.now(), user: null, rooms: [], granted: [], history: Object.fromEntries(rooms.map((r) => [r, { base: undefined, sends: [] }])) };
}

describe('recovery journal: which entry an offset stands for', () => {
  it('finds the newest shared delivery at or below the offset, after the socket went live', () => {
    const j = new Journal(4);
    for (let i = 0; i < 10; i++) {
      const { seq } = j.next();
      if (seq % 2 === 0) j.shared('r', seq, id(seq)); // seqs 2, 4, 6, 8, 10 in the room
    }
    const ring = j.ring('r')!;
    assert.equal(lastShared(ring, 0, 10), id(10));
    assert.equal(lastShared(ring, 0, 9), id(8));
    assert.equal(lastShared(ring, 8, 9), null, 'live from 8: nothing newer by 9');
    assert.equal(lastShared(ring, 0, 1), null, 'nothing by seq 1');
  });

  it('past its capacity it keeps the newest dropped entry as a floor, and says when it cannot tell', () => {
    const j = new Journal(4);
    for (let seq = 1; seq <= 20; seq++) j.shared('r', seq, id(seq)); // drops down to 4 past 5 kept
    const ring = j.ring('r')!;
    const oldest = ring.seqs[0]!;
    const floor = ring.floor!;
    assert.equal(floor[0], oldest - 1);
    assert.equal(lastShared(ring, 0, oldest - 1), id(oldest - 1), 'at the floor: the floor');
    assert.equal(lastShared(ring, 0, oldest - 2), undefined, 'below the floor: cannot be told');
    assert.equal(lastShared(ring, floor[0], floor[0]), null, 'live from the floor: nothing');
  });

  it('parses offsets it made and refuses others', () => {
    const j = new Journal();
    const { offset, seq } = j.next();
    assert.deepEqual(parseOffset(offset), { epoch: j.epoch, seq });
    for (const bad of ['', '.1', 'x', 'e.-1', 'e.1.5', 'e.abc', 'x'.repeat(50), 12]) assert.equal(parseOffset(bad), undefined, String(bad));
  });

  it('memory store: a session is taken once, and only before it expires', async () => {
    let now = 1_000;
    const store = createMemorySessionStore(new Journal(), () => now);
    await store.save('pid-1', session([]), new Journal(), 500);
    assert.equal((await store.take('pid-1'))?.sid, 'sid');
    assert.equal(await store.take('pid-1'), undefined);
    await store.save('pid-2', session([]), new Journal(), 500);
    now += 501;
    assert.equal(await store.take('pid-2'), undefined);
  });
});

describe('recovery journal in Redis', () => {
  let redis: RedisProcess;
  let client: Redis;
  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
  });
  after(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  it('stores a ring once per entry, capped with a floor, and answers like the ring itself', async () => {
    const store = createRedisSessionStore(client, 'hj', 4);
    const j = new Journal(1000);
    for (let seq = 1; seq <= 6; seq++) j.shared('r', j.next().seq, id(seq));
    await store.save('pid-a', session(['r']), j, 60_000);
    // Written entries leave the replica's memory; the next save sends only what is new.
    assert.equal(j.ring('r')!.seqs.length, 0);
    for (let seq = 7; seq <= 10; seq++) j.shared('r', j.next().seq, id(seq));
    await store.save('pid-b', session(['r']), j, 60_000);
    const keys = await client.keys('hj-journal:*');
    assert.equal(keys.length, 2, 'the ring and its floor');
    assert.equal(await client.zcard(`hj-journal:{${j.epoch}}:r`), 4);
    assert.equal(await store.shared(j.epoch, 'r', 0, 10), id(10));
    assert.equal(await store.shared(j.epoch, 'r', 0, 7), id(7));
    assert.equal(await store.shared(j.epoch, 'r', 0, 6), id(6), 'the floor: the newest entry dropped');
    assert.equal(await store.shared(j.epoch, 'r', 0, 5), undefined, 'below the floor: cannot be told');
    assert.equal(await store.shared(j.epoch, 'r', 10, 10), null, 'nothing after 10');
    assert.equal(await store.shared('another-epoch', 'r', 0, 10), null);
    // The session key holds no session id, only a hash of it; a session is taken once.
    assert.equal((await client.keys('hj-session:*')).some((k) => k.includes('pid-a')), false);
    assert.equal((await store.take('pid-a'))?.sid, 'sid');
    assert.equal(await store.take('pid-a'), undefined);
  });
});
