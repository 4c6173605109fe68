// `npm test`'s reporter: node's own (spec on a terminal, TAP otherwise, as node 20 chooses when no
// reporter is given), plus one closing diagnostic line that lists every skipped test or suite with
// its reason, so a run on a machine without the extra tools says what it did not check and which
// package would check it (test/helpers/tools.ts gives the reasons). Plain JavaScript: node loads
// reporters before `--import tsx` applies.
import { relative } from 'node:path';
import { Readable } from 'node:stream';
import { spec, tap } from 'node:test/reporters';

async function* withSkipSummary(source) {
  /** @type {Map<string, string[]>} reason → the tests and suites skipped for it */
  const byReason = new Map();
  for await (const event of source) {
    const { skip, name, file } = event.data ?? {};
    if ((event.type === 'test:pass' || event.type === 'test:fail') && skip !== undefined && skip !== false) {
      const reason = typeof skip === 'string' && skip ? skip : 'no reason given';
      const where = file ? `${relative(process.cwd(), file)}: ${name}` : String(name);
      byReason.set(reason, [...(byReason.get(reason) ?? []), where]);
    }
    yield event;
  }
  const count = [...byReason.values()].reduce((a, l) => a + l.length, 0);
  const message =
    count === 0 ? 'skips: none' : `skips (${count}): ${[...byReason].map(([reason, tests]) => `${reason}: ${tests.join(', ')}`).join('; ')}`;
  yield { type: 'test:diagnostic', data: { nesting: 0, message } };
}

export default async function* reporter(source) {
  const events = withSkipSummary(source);
  if (process.stdout.isTTY) yield* Readable.from(events).compose(new spec());
  else yield* tap(events);
}
