import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { HeraldError } from '../errors.js';

/**
 * Decides who may call the publish API. With keys: a matching `Authorization: Bearer <key>`,
 * compared in constant time (both sides hashed first, so lengths leak nothing). Without keys:
 * loopback callers only.
 */
export interface PublishAuthorizer {
  check(headers: Readonly<Record<string, string>>, remoteAddress: string): void;
}

export function createPublishAuthorizer(keys: readonly string[]): PublishAuthorizer {
  const digests = keys.map(digest);
  return {
    check(headers, remoteAddress) {
      if (digests.length === 0) {
        if (!isLoopback(remoteAddress)) {
          throw new HeraldError('forbidden', 'No PUBLISH_KEYS are configured, so only loopback callers may publish.');
        }
        return;
      }
      const match = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
      if (!match?.[1]) throw new HeraldError('unauthorized');
      const given = digest(match[1]);
      // Compare against every key so timing does not reveal which one matched.
      let ok = false;
      for (const d of digests) ok = timingSafeEqual(given, d) || ok;
      if (!ok) throw new HeraldError('unauthorized');
    },
  };
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * True for 127.0.0.0/8 and ::1 in any textual form, including the IPv4-mapped, zero-padded
 * `0000:...:ffff:7f00:0001` that uWebSockets.js reports.
 */
export function isLoopback(address: string): boolean {
  const family = isIP(address);
  return family !== 0 && LOOPBACK.check(address, family === 4 ? 'ipv4' : 'ipv6');
}
