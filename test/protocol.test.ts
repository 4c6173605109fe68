import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeraldError } from '../src/errors.js';
import { validateEventName } from '../src/protocol/events.js';
import { roomFromClientArg, validateRoom } from '../src/protocol/rooms.js';
import { createPublishAuthorizer, isLoopback } from '../src/auth/publish-keys.js';
import { messageIds } from '../src/publish/message-id.js';
import { parsePublishRequest, PUBLISH_MAX_ROOMS } from '../src/publish/service.js';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof HeraldError, `threw ${String(err)}`);
    return err.code;
  }
  return 'none';
};

describe('room names', () => {
  it('accepts the documented alphabet up to 128 characters', () => {
    for (const ok of ['a', 'scores:match-42', 'user:alice@example.com', 'k=v.x_y', 'x'.repeat(128)]) {
      assert.equal(validateRoom(ok), ok);
    }
  });
  it('rejects everything else with invalid_room', () => {
    for (const bad of ['', 'x'.repeat(129), 'a b', 'a*', 'a#b', 'é', 'a\nb', 1, null, undefined, {}, ['a']]) {
      assert.equal(code(() => validateRoom(bad)), 'invalid_room', JSON.stringify(bad));
    }
  });
  it('takes a string or {room} from clients', () => {
    assert.equal(roomFromClientArg('a'), 'a');
    assert.equal(roomFromClientArg({ room: 'a' }), 'a');
    assert.equal(code(() => roomFromClientArg(['a'])), 'invalid_room');
  });
});

describe('event names', () => {
  it('rejects reserved, empty, long and non-printable names', () => {
    assert.equal(validateEventName('score'), 'score');
    for (const bad of ['connect', 'disconnect', 'error', 'herald:hello', 'herald:x', '', 'x'.repeat(65), 'a b', 5]) {
      assert.equal(code(() => validateEventName(bad)), 'invalid_event', JSON.stringify(bad));
    }
  });
});

describe('publish requests', () => {
  it('normalizes room and rooms, defaulting data to null and dropping duplicate rooms', () => {
    assert.deepEqual(parsePublishRequest({ room: 'a', event: 'e' }), { rooms: ['a'], event: 'e', data: null });
    assert.deepEqual(parsePublishRequest({ rooms: ['a', 'b', 'a'], event: 'e', data: 0 }), {
      rooms: ['a', 'b'],
      event: 'e',
      data: 0,
    });
  });
  it('limits the number of rooms', () => {
    const rooms = Array.from({ length: PUBLISH_MAX_ROOMS + 1 }, (_, i) => `r${i}`);
    assert.equal(code(() => parsePublishRequest({ rooms, event: 'e' })), 'bad_request');
    assert.equal(parsePublishRequest({ rooms: rooms.slice(1), event: 'e' }).rooms.length, PUBLISH_MAX_ROOMS);
  });
  it('rejects a __proto__ key as an unknown field without touching any prototype', () => {
    const body = JSON.parse('{"room":"a","event":"e","__proto__":{"polluted":true}}');
    assert.equal(code(() => parsePublishRequest(body)), 'bad_request');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe('message ids', () => {
  it('are short, distinct within a process and across processes', () => {
    const a = messageIds();
    const b = messageIds();
    const ids = [...Array.from({ length: 5000 }, a), ...Array.from({ length: 5000 }, b)];
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{8}-[0-9a-z]+$/);
    assert.ok(ids.every((id) => id.length <= 13), 'at most 13 characters for the first 36^4 ids');
  });
});

describe('publish authorization', () => {
  it('recognizes loopback in every form the transports report', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', '0000:0000:0000:0000:0000:ffff:7f00:0001', '0000:0000:0000:0000:0000:0000:0000:0001']) {
      assert.equal(isLoopback(a), true, a);
    }
    for (const a of ['10.0.0.1', '192.168.1.1', '0000:0000:0000:0000:0000:ffff:0a00:0001', '2001:db8::1', '', 'localhost']) {
      assert.equal(isLoopback(a), false, a);
    }
  });
  it('without keys admits loopback only', () => {
    const auth = createPublishAuthorizer([]);
    auth.check({}, '127.0.0.1');
    assert.equal(code(() => auth.check({}, '10.1.2.3')), 'forbidden');
  });
  it('with keys needs a matching bearer key, whatever the caller address, within the key\'s rooms', () => {
    const auth = createPublishAuthorizer([
      { key: 'first-key-0123456789', rooms: undefined },
      { key: 'second-key-0123456789', rooms: ['scores:*', 'news'] },
    ]);
    auth.check({ authorization: 'Bearer first-key-0123456789' }, '10.1.2.3').assertRooms(['anything', 'user:x']);
    const scoped = auth.check({ authorization: 'bearer second-key-0123456789' }, '127.0.0.1');
    scoped.assertRooms(['scores:1', 'news']);
    assert.equal(code(() => scoped.assertRooms(['scores:1', 'chat:1'])), 'forbidden');
    for (const h of [undefined, '', 'Bearer', 'Bearer first-key', 'Basic first-key-0123456789', 'Bearer first-key-0123456789x']) {
      assert.equal(code(() => auth.check(h === undefined ? {} : { authorization: h }, '127.0.0.1')), 'unauthorized', String(h));
    }
  });
});
