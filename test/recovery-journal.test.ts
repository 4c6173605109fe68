import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { Journal, JOURNAL_DEFAULTS, ownPosition, parseOffset, type JournalLimits } from '../src/recovery/journal.js';
import { lastShared } from '../src/recovery/ring.js';
import { createMemorySessionStore, type SessionStore, type StoredSession } from '../src/recovery/store.js';
import { createRedisSessionStore } from '../src/recovery/redis-store.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';

/** `n`-0 style ids for seq n, so answers read as the seq they came from. */
const id = (seq: number) => `${1000 + seq}-0`;

const journal = (limits: Partial<JournalLimits>) => new Journal({ ...JOURNAL_DEFAULTS, ...limits });

function session(rooms: string[], who: Partial<StoredSession> = {}): StoredSession {
  return {
    v: 2,
    sid: 'sid',
    epoch: 'e',
    at: Date.now(),
    user: null,
    rooms: [],
    granted: [],
    history: Object.fromEntries(rooms.map((r) => [r, { base: undefined, sends: [] }])),
    ...who,
  };
}

describe('recovery journal: which entry an offset stands for', () => {
  it('finds the newest shared delivery at or below the offset, after the socket went live', () => {
    const j = journal({ roomEntries: 4 });
    for (let i = 0; i < 10; i++) {
      const { seq } = j.next();
      if (seq % 2 === 0) j.shared('r', seq, id(seq)); // seqs 2, 4, 6, 8, 10 in the room
    }
    const ring = j.ring('r')!;
    assert.equal(lastShared(ring, 0, 10), id(10));
    assert.equal(lastShared(ring, 0, 9), id(8));
    assert.equal(lastShared(ring, 8, 9), null, 'live from 8: nothing newer by 9');
  });

  it('past its room bound it drops the oldest and keeps the newest dropped as a floor; below it nothing can be told', () => {
    const j = journal({ roomEntries: 4 });
    for (let seq = 1; seq <= 20; seq++) j.shared('r', seq, id(seq));
    const ring = j.ring('r')!;
    assert.deepEqual([ring.size, ring.seqAt(0), ring.floorSeq, j.entries], [4, 17, 16, 4]);
    assert.equal(lastShared(ring, 0, 20), id(20));
    assert.equal(lastShared(ring, 0, 16), id(16), 'at the floor: the floor');
    assert.equal(lastShared(ring, 0, 15), undefined, 'below the floor: cannot be told');
    assert.equal(lastShared(ring, 16, 16), null, 'live from the floor: nothing');
  });

  it('keeps at most its per-replica bound, all rooms together, dropping the replica\'s oldest entries first', () => {
    const j = journal({ roomEntries: 1000, entries: 10 });
    // Interleaved: a gets 1, 4, 7, ...; b 2, 5, 8, ...; c 3, 6, 9, ...
    for (let seq = 1; seq <= 30; seq++) j.shared(['a', 'b', 'c'][(seq - 1) % 3]!, seq, id(seq));
    assert.equal(j.entries, 10);
    const kept = ['a', 'b', 'c'].flatMap((room) => {
      const ring = j.ring(room)!;
      return Array.from({ length: ring.size }, (_, i) => ring.seqAt(i));
    });
    assert.deepEqual(kept.sort((x, y) => x - y), [21, 22, 23, 24, 25, 26, 27, 28, 29, 30], 'the newest ten, whatever their room');
    // a kept 22, 25, 28 and dropped 19 last.
    assert.equal(lastShared(j.ring('a')!, 0, 23), id(22));
    assert.equal(lastShared(j.ring('a')!, 0, 20), id(19), 'the floor');
    assert.equal(lastShared(j.ring('a')!, 0, 18), undefined, 'older than the floor');
    // A room that falls silent is emptied by the others' traffic, and keeps only its floor.
    for (let seq = 31; seq <= 60; seq++) j.shared('b', seq, id(seq));
    assert.deepEqual([j.ring('a')!.size, j.ring('a')!.floorSeq, j.entries], [0, 28, 10]);
    assert.equal(lastShared(j.ring('a')!, 0, 60), id(28));
  });

  it('an id it cannot write back exactly is kept as "cannot be told"', () => {
    const j = journal({});
    j.shared('r', 1, '0001-0');
    assert.equal(lastShared(j.ring('r')!, 0, 1), undefined);
  });

  it("keeps at most its bound of one socket's own sends, across its rooms, each room with a floor", () => {
    const j = journal({ socketSends: 8 });
    j.begin('s', 'x', '999-0');
    j.begin('s', 'y', undefined);
    for (let seq = 1; seq <= 20; seq++) j.sent('s', seq % 2 ? 'x' : 'y', seq, id(seq));
    const x = j.snapshot('s', 'x')!;
    const y = j.snapshot('s', 'y')!;
    const count = (x.sends.length + y.sends.length) / 3;
    assert.ok(count <= 8 && count >= 7, `kept ${count}`);
    // The newest sends of x are exact; at its floor, the floor; before it, nothing can be told.
    assert.equal(ownPosition(x, 19), id(19));
    assert.equal(ownPosition(x, 20), id(19));
    assert.equal(ownPosition(x, x.floor![0]), id(x.floor![0]));
    assert.equal(ownPosition(x, x.floor![0] - 1), undefined);
    assert.equal(j.lastSent('s', 'y'), id(20));
    // Forgetting a room gives its share back.
    j.forget('s', 'x');
    for (let seq = 21; seq <= 24; seq++) j.sent('s', 'y', seq, id(seq));
    assert.equal(ownPosition(j.snapshot('s', 'y')!, 24), id(24));
  });

  it('a catch-up with nothing sent yet has its base', () => {
    const j = journal({});
    j.begin('s', 'x', undefined);
    j.startAt('s', 'x', '5-0');
    assert.equal(ownPosition(j.snapshot('s', 'x')!, 100), '5-0');
  });

  it('parses offsets it made and refuses others', () => {
    const j = journal({});
    const { offset, seq } = j.next();
    assert.deepEqual(parseOffset(offset), { epoch: j.epoch, seq });
    for (const bad of ['', '.1', 'x', 'e.-1', 'e.1.5', 'e.abc', 'x'.repeat(50), 12]) assert.equal(parseOffset(bad), undefined, String(bad));
  });
});

/** The contract both stores keep. */
function storeContract(make: (perKey: number) => SessionStore) {
  it('peek reads without taking; of concurrent takes exactly one gets the session', async () => {
    const store = make(10);
    await store.save('pid-1', session([]), journal({}), 60_000);
    assert.equal((await store.peek('pid-1'))?.sid, 'sid');
    assert.equal((await store.peek('pid-1'))?.sid, 'sid', 'still there');
    const takes = await Promise.all([store.take('pid-1'), store.take('pid-1'), store.take('pid-1')]);
    assert.equal(takes.filter((t) => t?.sid === 'sid').length, 1);
    assert.equal(await store.peek('pid-1'), undefined);
  });

  it('finds waiting sessions by user, socket id and jti, and changes or drops each once', async () => {
    const store = make(10);
    await store.save('p-a', session(['h'], { sid: 'sid-a', user: 'alice', tokenId: 'jti-a', rooms: ['plain'] }), journal({}), 60_000);
    await store.save('p-b', session([], { sid: 'sid-b', user: 'alice' }), journal({}), 60_000);
    await store.save('p-c', session([], { sid: 'sid-c', user: 'carol' }), journal({}), 60_000);
    const changed = new Set<string>();
    await store.amend({ user: 'alice' }, (s) => ({ ...s, rooms: [] }), changed);
    assert.equal(changed.size, 2);
    assert.deepEqual((await store.peek('p-a'))?.rooms, []);
    // Not its business: not counted.
    const none = new Set<string>();
    await store.amend({ user: 'alice' }, () => undefined, none);
    assert.equal(none.size, 0);
    const byJti = new Set<string>();
    await store.amend({ jti: 'jti-a' }, () => null, byJti);
    assert.equal(byJti.size, 1);
    assert.equal(await store.peek('p-a'), undefined);
    const byClient = new Set<string>();
    await store.amend({ client: 'sid-c' }, () => null, byClient);
    assert.deepEqual([byClient.size, await store.take('p-c')], [1, undefined]);
    // Taken sessions are not found any more.
    assert.equal((await store.take('p-b'))?.sid, 'sid-b');
    const gone = new Set<string>();
    await store.amend({ user: 'alice' }, () => null, gone);
    assert.equal(gone.size, 0);
  });

  it('keeps at most its bound of sessions per user, dropping the oldest', async () => {
    const store = make(2);
    const dropped: number[] = [];
    for (let i = 1; i <= 4; i++) dropped.push(await store.save(`q-${i}`, session([], { sid: `s-${i}`, user: 'dave' }), journal({}), 60_000));
    assert.deepEqual(dropped, [0, 0, 1, 1]);
    assert.deepEqual(await Promise.all([1, 2, 3, 4].map(async (i) => (await store.peek(`q-${i}`))?.sid)), [undefined, undefined, 's-3', 's-4']);
  });
}

describe('recovery sessions in memory', () => {
  storeContract((perKey) => createMemorySessionStore(journal({}), perKey));

  it('a session is taken only before it expires', async () => {
    let now = 1_000;
    const store = createMemorySessionStore(journal({}), 10, () => now);
    await store.save('pid-2', session([]), journal({}), 500);
    now += 501;
    assert.equal(await store.take('pid-2'), undefined);
  });
});

describe('recovery sessions and journal in Redis', () => {
  let redis: RedisProcess;
  let client: Redis;
  let prefix = 0;
  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
  });
  after(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  storeContract((perKey) => createRedisSessionStore(client, `c${++prefix}`, perKey, 1000));

  it('stores a ring once per entry, capped with a floor, and answers like the ring itself', async () => {
    const store = createRedisSessionStore(client, 'hj', 10, 4);
    const j = journal({});
    for (let seq = 1; seq <= 6; seq++) j.shared('r', j.next().seq, id(seq));
    await store.save('pid-a', session(['r']), j, 60_000);
    // Written entries leave the replica's memory; the next save sends only what is new.
    assert.deepEqual([j.ring('r')!.size, j.entries], [0, 0]);
    for (let seq = 7; seq <= 10; seq++) j.shared('r', j.next().seq, id(seq));
    await store.save('pid-b', session(['r']), j, 60_000);
    assert.equal(await client.zcard(`hj-journal:{${j.epoch}}:r`), 4);
    assert.equal(await store.shared(j.epoch, 'r', 0, 10), id(10));
    assert.equal(await store.shared(j.epoch, 'r', 0, 7), id(7));
    assert.equal(await store.shared(j.epoch, 'r', 0, 6), id(6), 'the floor: the newest entry dropped');
    assert.equal(await store.shared(j.epoch, 'r', 0, 5), undefined, 'below the floor: cannot be told');
    assert.equal(await store.shared(j.epoch, 'r', 10, 10), null, 'nothing after 10');
    assert.equal(await store.shared('another-epoch', 'r', 0, 10), null);
    // The session key holds no session id, only a hash of it.
    assert.equal((await client.keys('hj-session:*')).some((k) => k.includes('pid-a')), false);
  });

  it('entries dropped in memory before they were written are never mistaken for a gap with nothing in it', async () => {
    const store = createRedisSessionStore(client, 'hg', 10, 1000);
    const j = journal({ roomEntries: 3 });
    for (let seq = 1; seq <= 3; seq++) j.shared('r', seq, id(seq));
    await store.save('pid-g1', session(['r']), j, 60_000); // 1-3 in Redis
    for (let seq = 4; seq <= 10; seq++) j.shared('r', seq, id(seq)); // 4-7 dropped in memory, 8-10 kept
    await store.save('pid-g2', session(['r']), j, 60_000);
    assert.equal(await store.shared(j.epoch, 'r', 0, 9), id(9));
    assert.equal(await store.shared(j.epoch, 'r', 0, 7), id(7), 'the floor');
    // Redis has 3, but 4-6 were delivered and dropped: not 3.
    assert.equal(await store.shared(j.epoch, 'r', 0, 6), undefined);
  });
});
