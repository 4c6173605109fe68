import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { io as connect, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';

/** A page of the documentation, from the repository root (`README.md`, `docs/guides/live-scores.md`). */
export function docPage(path: string): URL {
  return new URL(`../../${path}`, import.meta.url);
}

/** The text of `page`'s fenced `lang` block that contains `needle`; exactly one must. */
export function codeBlock(page: URL, needle: string, lang: 'js' | 'sh'): string {
  const blocks = [...readFileSync(page, 'utf8').matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
  const found = blocks.filter((b) => b.includes(needle));
  assert.equal(found.length, 1, `${page.pathname} has one ${lang} block with ${needle}`);
  return found[0]!;
}

/**
 * Runs a client snippet as an application would, with its free names (`io`, `socket`, `render`,
 * `console`, ...) given in `scope`; resolves the names in `returns` it defines. Import lines are
 * left out: `scope` supplies what they import.
 */
export function runSnippet(code: string, scope: Record<string, unknown>, returns: string[] = []): Record<string, any> {
  const body = code
    .split('\n')
    .filter((l) => !l.startsWith('import '))
    .join('\n');
  const result = `return { ${returns.map((n) => `${n}: typeof ${n} === 'undefined' ? undefined : ${n}`).join(', ')} };`;
  return new Function(...Object.keys(scope), `${body}\n${result}`)(...Object.values(scope)) as Record<string, any>;
}

/**
 * An `io` for snippets that connect to `http://localhost:3000`: it connects to `url` instead, with
 * the snippet's options, a connection of its own (`forceNew`) and a short reconnection back-off.
 * Every socket it makes is kept in `sockets`, for the test to close.
 */
export function snippetIo(url: string, sockets: Socket[]) {
  return (asked: string, opts: Partial<ManagerOptions & SocketOptions> = {}): Socket => {
    assert.equal(asked, 'http://localhost:3000', 'the snippet connects where the docs run the gateway');
    const socket = connect(url, { ...opts, forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 300 });
    sockets.push(socket);
    return socket;
  };
}

/** A `console` whose `log` calls are kept, for snippets that print what they receive. */
export function capturedConsole(): { console: { log: (...args: unknown[]) => void }; lines: unknown[][] } {
  const lines: unknown[][] = [];
  return { console: { log: (...args: unknown[]) => lines.push(args) }, lines };
}
