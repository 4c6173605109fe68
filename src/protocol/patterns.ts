import type { RoomName } from './rooms.js';

/**
 * Room patterns, as operators write them in config: a room name in which `*` matches any run of
 * characters (including `:`), e.g. `scores:*` or `chat:team-*`. `*` alone matches every room.
 */
export type RoomPattern = string;

const PATTERN = /^[A-Za-z0-9_\-:.@=*]{1,128}$/;

export function isValidPattern(p: string): boolean {
  return PATTERN.test(p);
}

export function compilePattern(p: RoomPattern): RegExp {
  const body = p
    .split('*')
    .map((part) => part.replace(/[.]/g, '\\.'))
    .join('.*');
  return new RegExp(`^${body}$`);
}

/** First-match lookup of a value by room, in the order the patterns were configured. */
export class PatternTable<T> {
  private readonly rules: { pattern: RoomPattern; re: RegExp; value: T }[];

  constructor(entries: readonly { pattern: RoomPattern; value: T }[]) {
    this.rules = entries.map((e) => ({ pattern: e.pattern, re: compilePattern(e.pattern), value: e.value }));
  }

  match(room: RoomName): T | undefined {
    return this.rules.find((r) => r.re.test(room))?.value;
  }

  get size(): number {
    return this.rules.length;
  }
}
