import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { owned } from './children.js';
import { onceWithin } from './wait.js';

/** The built `herald` command, as package.json's "bin" names it. */
export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `herald <args>` (node dist/cli.js) to completion with `env` and PATH only. */
export async function herald(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  const child = owned(spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH!, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code] = await onceWithin<[number | null]>(child, 'close', `herald ${args.join(' ')} to exit`);
  return { code, stdout, stderr };
}

/** `herald token <args>` that must succeed: the token it printed. */
export async function mint(args: string[], env: Record<string, string>): Promise<string> {
  const run = await herald(['token', ...args], env);
  if (run.code !== 0) throw new Error(`herald token ${args.join(' ')} exited ${run.code}: ${run.stderr}`);
  return run.stdout.trim();
}

/** A JWT's payload, unverified (for asserting what was signed). */
export function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
}
