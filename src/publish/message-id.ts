import { randomBytes } from 'node:crypto';
import type { MessageId } from '../protocol/events.js';

/**
 * `meta.id` of messages in rooms without history: a random prefix drawn once per process (48
 * bits, base64url) and a counter in base 36, e.g. `q3ZkR0_a-1c8`. Unique across replicas and
 * restarts without coordination, and a third of a UUID's length: the id travels in every frame
 * of every delivery, so its bytes are paid once per subscriber.
 */
export function messageIds(): () => MessageId {
  const prefix = randomBytes(6).toString('base64url');
  let n = 0;
  return () => `${prefix}-${(n++).toString(36)}`;
}
