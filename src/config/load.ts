import { HeraldError } from '../errors.js';
import { SETTINGS, type Config } from './schema.js';

/** Raised by `loadConfig` with every problem found, one line per variable. */
export class ConfigError extends HeraldError {
  readonly problems: readonly string[];

  constructor(problems: string[]) {
    super('config_invalid', `invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * Builds the configuration from environment variables. Validates every variable before failing,
 * so an operator sees all mistakes at once; the result is frozen.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const problems: string[] = [];
  const values: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    try {
      values[s.key] = s.parse(env[s.env], env);
    } catch (err) {
      problems.push(`${s.env} ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(values as unknown as Config);
}

/**
 * Only the settings named by `keys`, for tools that need a few of them (`herald token`): each is
 * parsed and refused exactly as `loadConfig` would, without requiring the rest to be valid.
 */
export function loadSettings<K extends keyof Config>(env: Readonly<Record<string, string | undefined>>, keys: readonly K[]): Pick<Config, K> {
  const problems: string[] = [];
  const values: Partial<Pick<Config, K>> = {};
  for (const s of SETTINGS) {
    if (!(keys as readonly string[]).includes(s.key)) continue;
    try {
      values[s.key as K] = s.parse(env[s.env], env) as Config[K];
    } catch (err) {
      problems.push(`${s.env} ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(values as Pick<Config, K>);
}

/** The Markdown table of docs/reference/configuration.md, generated so it cannot drift. */
export function renderConfigTable(): string {
  const rows = SETTINGS.map((s) => `| \`${s.env}\` | ${s.defaultText} | ${s.doc} |`);
  return ['| Variable | Default | Meaning |', '| --- | --- | --- |', ...rows].join('\n');
}
