import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createRedisRevocations, MemoryRevocations, type Revocations } from '../src/auth/revocations.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';

const HOUR_MS = 3_600_000;

/** The guarantees of the `Revocations` interface, against each implementation. */
function contract(name: string, make: () => Promise<Revocations>) {
  describe(`revocations: ${name}`, () => {
    let store: Revocations;
    before(async () => {
      store = await make();
    });
    const t = 1_700_000_000;

    it('refuses a user\'s tokens issued before issuedBefore, and that user\'s tokens without iat', async () => {
      await store.revoke({ user: 'u1', issuedBefore: t, keepUntil: Date.now() + HOUR_MS });
      assert.equal(await store.isRevoked({ user: 'u1', issuedAt: t - 1, tokenId: undefined }), true);
      assert.equal(await store.isRevoked({ user: 'u1', issuedAt: undefined, tokenId: undefined }), true);
      assert.equal(await store.isRevoked({ user: 'u1', issuedAt: t, tokenId: undefined }), false);
      assert.equal(await store.isRevoked({ user: 'u2', issuedAt: t - 1, tokenId: undefined }), false);
    });

    it('only widens: an earlier issuedBefore or a shorter keep does not undo a revocation', async () => {
      await store.revoke({ user: 'w', issuedBefore: t + 100, keepUntil: Date.now() + HOUR_MS });
      await store.revoke({ user: 'w', issuedBefore: t, keepUntil: Date.now() + 1000 });
      assert.equal(await store.isRevoked({ user: 'w', issuedAt: t + 50, tokenId: undefined }), true);
      await store.revoke({ jti: 'jw', keepUntil: Date.now() + HOUR_MS });
      await store.revoke({ jti: 'jw', keepUntil: Date.now() + 1 });
      assert.equal(await store.isRevoked({ user: 'any', issuedAt: t, tokenId: 'jw' }), true);
    });

    it('refuses a token by jti, whoever holds it', async () => {
      await store.revoke({ jti: 'j1', keepUntil: Date.now() + HOUR_MS });
      assert.equal(await store.isRevoked({ user: 'a', issuedAt: t, tokenId: 'j1' }), true);
      assert.equal(await store.isRevoked({ user: 'a', issuedAt: t, tokenId: 'j2' }), false);
      assert.equal(await store.isRevoked({ user: 'a', issuedAt: t, tokenId: undefined }), false);
    });

    it('forgets a revocation at its keepUntil, and keeps none whose keepUntil has passed', async () => {
      await store.revoke({ user: 'gone', issuedBefore: t, keepUntil: Date.now() - 1 });
      assert.equal(await store.isRevoked({ user: 'gone', issuedAt: t - 1, tokenId: undefined }), false);
      await store.revoke({ jti: 'short', keepUntil: Date.now() + 300 });
      assert.equal(await store.isRevoked({ user: 'a', issuedAt: t, tokenId: 'short' }), true);
      await waitFor('the short revocation forgotten', async () => !(await store.isRevoked({ user: 'a', issuedAt: t, tokenId: 'short' })));
    });
  });
}

contract('memory', async () => new MemoryRevocations());

let redis: RedisProcess;
let client: Redis;
contract('redis', async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  return createRedisRevocations({ redis: client, keyPrefix: `t${process.pid}` });
});
after(async () => {
  client?.disconnect();
  await redis?.stop();
});
