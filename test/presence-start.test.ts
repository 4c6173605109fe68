import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';

/**
 * A replica starts before its Redis connection is up. Its first presence heartbeat used to run
 * at once and fail (the publisher has no offline queue), so every healthy start logged
 * "presence write failed".
 */
describe('presence at start with a fresh Redis', () => {
  let redis: RedisProcess;
  let gw: Gateway;
  let client: TestClient | undefined;

  before(async () => {
    redis = await startRedis();
    gw = await startGateway({ env: { REDIS_URL: redis.url, PUBLISH_KEYS: KEY, PRESENCE_ROOMS: 'lobby', PUBLIC_ROOMS: 'lobby' } });
  });

  after(async () => {
    client?.close();
    await gw?.stop();
    await redis?.stop();
  });

  it('logs no presence failure, and presence shows the first member', async () => {
    client = await connectClient(gw.url);
    assert.deepEqual(await client.subscribe('lobby'), { ok: true, room: 'lobby' });
    // The heartbeat and the member were written: a member counts only while its replica's heartbeat key is live.
    const fromClient = await waitFor('the client to see itself in presence', async () => {
      const page = (await client!.socket.timeout(5000).emitWithAck('presence', 'lobby')) as { ok: boolean; connections?: number };
      return page.ok && page.connections === 1 ? page : undefined;
    });
    assert.equal(fromClient.connections, 1);
    const res = await fetch(`${gw.url}/v1/rooms/lobby/presence`, { headers: { authorization: `Bearer ${KEY}` } });
    assert.deepEqual(await res.json(), { room: 'lobby', connections: 1, users: [] });
    const failures = gw.logs.filter((l) => /presence .*failed/.test(l.msg));
    assert.deepEqual(failures, [], 'a healthy start logs no presence failure');
  });
});
