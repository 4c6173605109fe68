#!/usr/bin/env node
/**
 * The `herald` command (package.json "bin"): `herald start | check | token | keygen`. Only this
 * file and src/main.ts (which `herald start` runs) touch the process: argv, env, output, exit code.
 */
import { runCli } from './cli/run.js';

process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
});
