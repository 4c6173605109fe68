import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Env } from '../config/types.js';

/**
 * `herald`'s exit codes, the same for every command: 0 done (warnings allowed), 1 the command ran
 * and failed (an invalid configuration, a key that does not fit), 2 it was called wrongly (an
 * unknown command or option, a bad option value).
 */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** What a command reads and writes, passed in so that only src/cli.ts touches the process. */
export interface Io {
  readonly env: Env;
  out(text: string): void;
  err(text: string): void;
}

export interface Command {
  readonly name: string;
  /** One line for `herald --help`. */
  readonly summary: string;
  /** `herald <name> --help`. */
  readonly help: string;
  /** Resolves with the exit code; throws `UsageError` for exit code 2. */
  run(args: string[], io: Io): Promise<number>;
}

/** The command line was wrong: said on stderr with a pointer to `--help`, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * `parseArgs` in strict mode with `--help` added; its complaints (unknown option, missing value)
 * become `UsageError`s. Returns undefined when `--help` was asked for (the caller prints help).
 */
export function parseOptions(args: string[], options: Options): Readonly<Record<string, unknown>> | undefined {
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, '.'));
  }
  return values.help ? undefined : values;
}

/** A string option's value (parseArgs gives strings for `type: 'string'`). */
export function text(values: Readonly<Record<string, unknown>>, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** A `multiple: true` string option, each value split on commas: `--rooms a,b --rooms c`. */
export function list(values: Readonly<Record<string, unknown>>, name: string): string[] {
  const v = values[name];
  const all = Array.isArray(v) ? (v as string[]) : typeof v === 'string' ? [v] : [];
  return all.flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s.length > 0);
}

/** A whole number option within bounds, or a `UsageError` naming the option. */
export function wholeNumber(option: string, raw: string | undefined, min: number, max: number, fallback: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(`--${option} must be a whole number from ${min} to ${max}, got "${raw}"`);
  }
  return Number(raw);
}

/** The command was called rightly but cannot do its job (no key, a key herald would refuse): exit code 1. */
export class CommandFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandFailed';
  }
}
