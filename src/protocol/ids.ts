import type { MessageId } from './events.js';

const ID = /^(\d{1,15})-(\d{1,15})$/;

/** True for a stream offset, `<ms>-<seq>`, as Redis streams and the memory backend make them. */
export function isStreamId(value: unknown): value is MessageId {
  return typeof value === 'string' && ID.test(value);
}

/** Orders two stream offsets: negative when `a` is older. */
export function compareIds(a: MessageId, b: MessageId): number {
  const [, am, as] = ID.exec(a)!;
  const [, bm, bs] = ID.exec(b)!;
  return Number(am) - Number(bm) || Number(as) - Number(bs);
}
