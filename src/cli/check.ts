import { ConfigError, loadConfig } from '../config/load.js';
import { configWarnings, unknownSettingWarnings, type ConfigWarning } from '../config/warnings.js';
import { EXIT, parseOptions, type Command } from './command.js';

interface Problem {
  readonly code: 'config_invalid';
  readonly setting: string;
  readonly message: string;
}

/** `herald check`: what `herald start` would refuse (errors) or warn about, without starting. */
export const check: Command = {
  name: 'check',
  summary: 'validate the configuration in the environment, with a did-you-mean for misspelled settings',
  help: `Usage: herald check [--json]

Reads the configuration from the environment as herald start does and lists every problem:
  error    config_invalid   a setting herald start would refuse (it then exits 1 without starting)
  warning  unknown_setting  a variable that looks like a herald setting but is not one (a typo such
                            as PUBLISH_KEY for PUBLISH_KEYS, or an unknown REDIS_*, JWT_*, HISTORY_*...
                            name); herald ignores it. herald start logs the same warning.
  warning  publish_loopback_only, anonymous_only, single_node: what herald start warns about too
It does not connect to Redis or fetch JWKS_URL.

Options:
  --json   one JSON object: {"valid", "errors": [{code, setting, message}], "warnings": [{code, message, setting?, didYouMean?}]}

Exit codes: 0 valid (warnings allowed), 1 errors found, 2 usage error.
`,
  async run(args, io) {
    const o = parseOptions(args, { json: { type: 'boolean' } });
    if (!o) {
      io.out(this.help);
      return EXIT.ok;
    }
    let errors: Problem[] = [];
    let warnings: ConfigWarning[];
    try {
      warnings = configWarnings(loadConfig(io.env), io.env);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      errors = err.problems.map((message) => ({ code: 'config_invalid', setting: message.split(' ')[0]!, message }));
      warnings = unknownSettingWarnings(io.env);
    }
    if (o.json) {
      io.out(`${JSON.stringify({ valid: errors.length === 0, errors, warnings })}\n`);
    } else {
      const line = (level: string, p: { code: string; message: string }) => io.out(`${level.padEnd(8)} ${p.code.padEnd(22)} ${p.message}\n`);
      for (const e of errors) line('error', e);
      for (const w of warnings) line('warning', w);
      const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
      io.out(`herald check: ${errors.length > 0 ? 'invalid' : 'valid'}, ${count(errors.length, 'error')}, ${count(warnings.length, 'warning')}\n`);
    }
    return errors.length > 0 ? EXIT.failed : EXIT.ok;
  },
};
