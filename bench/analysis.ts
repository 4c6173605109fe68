import { readFileSync } from 'node:fs';

const MARKER = /^<!-- section: ([a-z0-9-]+) -->\n/gm;

/** bench/analysis.md, section by section. */
function load(): Map<string, string> {
  const text = readFileSync(new URL('./analysis.md', import.meta.url), 'utf8');
  const marks = [...text.matchAll(MARKER)];
  const sections = new Map<string, string>();
  marks.forEach((m, i) => {
    const start = m.index! + m[0].length;
    const end = i + 1 < marks.length ? marks[i + 1]!.index! : text.length;
    // The newline that ends a section's last line belongs to the file, not to the section.
    sections.set(m[1]!, text.slice(start, end).replace(/\n$/, ''));
  });
  return sections;
}

let sections: Map<string, string> | undefined;

/**
 * The section `name` of bench/analysis.md with every `{{key}}` replaced by `values[key]`. Throws
 * for a section that is not there, a placeholder without a value and a value without a
 * placeholder, so the generator cannot drift from the prose silently.
 */
export function analysis(name: string, values: Readonly<Record<string, string>> = {}): string {
  sections ??= load();
  const text = sections.get(name);
  if (text === undefined) throw new Error(`bench/analysis.md has no section "${name}"`);
  const used = new Set<string>();
  const filled = text.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`bench/analysis.md section "${name}" wants {{${key}}}`);
    used.add(key);
    return value;
  });
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length > 0) throw new Error(`bench/analysis.md section "${name}" has no {{${unused.join('}}, {{')}}}`);
  return filled;
}
