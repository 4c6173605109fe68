import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';

/**
 * The programs the tests run besides node, each with the Debian package that installs it.
 *
 * - `core`: what herald's own behaviour is tested with (Redis, TLS certificates, a PID namespace).
 *   A machine without one cannot run the suite: the test that needs it fails and names the package.
 * - extra: checks of deployment files and of the load balancer, image and browser set-ups. Where
 *   one is missing the test is skipped with the package named (`needs`); under `CI=true` it runs
 *   and fails instead, so CI checks everything (.ci/run installs them all).
 *
 * Tools are found through PATH, as a shell finds them, so a PATH without them simulates a machine
 * without them.
 */
export const TOOLS = {
  'redis-server': { pkg: 'redis-server', core: true },
  'redis-cli': { pkg: 'redis-tools', core: true },
  openssl: { pkg: 'openssl', core: true },
  unshare: { pkg: 'util-linux', core: true },
  haproxy: { pkg: 'haproxy', core: false },
  chromium: { pkg: 'chromium', core: false },
  tini: { pkg: 'tini', core: false },
  yamllint: { pkg: 'yamllint', core: false },
  shellcheck: { pkg: 'shellcheck', core: false },
  curl: { pkg: 'curl', core: false },
} as const;

export type Tool = keyof typeof TOOLS;

/** True when the run must not skip anything for a missing tool (CI sets `CI=true`). */
export const STRICT = process.env.CI === 'true' || process.env.CI === '1';

/** Where `name` is on PATH (as a shell would find it), or undefined. */
export function which(name: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, name);
    try {
      if (!statSync(file).isFile()) continue;
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here: try the next directory
    }
  }
  return undefined;
}

/** Where a non-root user's PATH often stops short (Debian puts haproxy in /usr/sbin). */
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

function install(tools: readonly Tool[]): string {
  const hint = tools.map((t) => which(t, SBIN.join(delimiter))).filter((f) => f !== undefined);
  const pkgs = `apt-get install ${[...new Set(tools.map((t) => TOOLS[t].pkg))].join(' ')}`;
  return hint.length > 0 ? `${pkgs}; or add ${hint.map((f) => dirname(f)).join(', ')} to PATH: ${hint.join(', ')} is installed` : pkgs;
}

/** A tool the tests need is not on PATH. */
export class ToolMissingError extends Error {
  constructor(readonly tools: readonly Tool[], why: string) {
    super(`${tools.join(', ')} not found on PATH (${install(tools)}): ${why}`);
    this.name = 'ToolMissingError';
  }
}

/** The path of a tool; throws `ToolMissingError` naming its package when it is not installed. */
export function toolPath(tool: Tool): string {
  const found = which(tool);
  if (found) return found;
  const why = TOOLS[tool].core
    ? 'the test suite needs it to run herald against real services'
    : STRICT
      ? 'CI=true runs every test, so a missing tool fails the run (.ci/run installs them all)'
      : 'this test needs it';
  throw new ToolMissingError([tool], why);
}

/**
 * For `describe`/`it` options: `{ skip: needs('haproxy') }`. Undefined when every tool is on
 * PATH; otherwise the skip reason, `needs haproxy (apt-get install haproxy)`. Under `CI=true` it
 * never skips: the test runs, and its `toolPath()` call fails it with the package named.
 */
export function needs(...tools: Tool[]): string | undefined {
  const missing = tools.filter((t) => !which(t));
  if (missing.length === 0 || STRICT) return undefined;
  return `needs ${missing.join(', ')} (${install(missing)})`;
}
