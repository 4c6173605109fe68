import { randomBytes } from 'node:crypto';
import { JWT_SECRET_MIN_LENGTH, KEY_MIN_LENGTH } from '../config/parse.js';
import { EXIT, parseOptions, text, wholeNumber, type Command } from './command.js';

const MAX_LENGTH = 512;
const MAX_COUNT = 100;

/**
 * `herald keygen`: random keys of base64url characters (6 random bits each), which need no quoting
 * in PUBLISH_KEYS' comma- and space-separated syntax, nor in a shell or a YAML file.
 */
export const keygen: Command = {
  name: 'keygen',
  summary: 'print random keys for PUBLISH_KEYS, CONTROL_KEYS, JWT_SECRET or WEBHOOK_SECRET',
  help: `Usage: herald keygen [--count <n>] [--length <n>]

Prints random keys, one per line, of A-Z a-z 0-9 _ - (6 random bits per character).

Options:
  --count <n>    how many keys (1-${MAX_COUNT}; default 1)
  --length <n>   characters per key (${KEY_MIN_LENGTH}-${MAX_LENGTH}; default ${JWT_SECRET_MIN_LENGTH}). PUBLISH_KEYS,
                 CONTROL_KEYS and WEBHOOK_SECRET need at least ${KEY_MIN_LENGTH}, JWT_SECRET at least ${JWT_SECRET_MIN_LENGTH}:
                 the default fits all of them.

Example:
  PUBLISH_KEYS=$(herald keygen) CONTROL_KEYS=$(herald keygen) JWT_SECRET=$(herald keygen --length 48) herald start
`,
  async run(args, io) {
    const options = parseOptions(args, { count: { type: 'string' }, length: { type: 'string' } });
    if (!options) {
      io.out(this.help);
      return EXIT.ok;
    }
    const count = wholeNumber('count', text(options, 'count'), 1, MAX_COUNT, 1);
    const length = wholeNumber('length', text(options, 'length'), KEY_MIN_LENGTH, MAX_LENGTH, JWT_SECRET_MIN_LENGTH);
    const keys = Array.from({ length: count }, () => randomBytes(Math.ceil((length * 3) / 4)).toString('base64url').slice(0, length));
    io.out(`${keys.join('\n')}\n`);
    return EXIT.ok;
  },
};
