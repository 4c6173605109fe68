import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/load.js';
import { editDistance } from '../config/unknown.js';
import { check } from './check.js';
import { CommandFailed, EXIT, UsageError, type Command, type Io } from './command.js';
import { keygen } from './keygen.js';
import { start } from './start.js';
import { token } from './token.js';

const COMMANDS: readonly Command[] = [start, check, token, keygen];

const HELP = `Usage: herald <command> [options]

herald is a WebSocket fan-out gateway: Socket.IO on uWebSockets.js, rooms shared across replicas
through Redis. It is configured by environment variables.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(8)} ${c.summary}`).join('\n')}

herald <command> --help describes a command's options. herald --version prints the version.
Exit codes: 0 done (warnings allowed), 1 failed (an invalid configuration, a key that does not fit),
2 usage error (an unknown command or option, a bad option value).
`;

/** Runs `herald <argv>`; resolves with the exit code (`herald start` resolves once it listens). */
export async function runCli(argv: readonly string[], io: Io): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) {
    io.err(HELP);
    return EXIT.usage;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    io.out(HELP);
    return EXIT.ok;
  }
  if (name === '--version' || name === '-v') {
    io.out(`${version()}\n`);
    return EXIT.ok;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    const near = COMMANDS.find((c) => editDistance(name, c.name) <= 2);
    io.err(`herald: unknown command "${name}"${near ? `; did you mean "${near.name}"?` : ''}\nRun herald --help for the commands.\n`);
    return EXIT.usage;
  }
  try {
    return await command.run(args, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`herald ${name}: ${err.message}\nRun herald ${name} --help for its options.\n`);
      return EXIT.usage;
    }
    if (err instanceof CommandFailed || err instanceof ConfigError) {
      io.err(`herald ${name}: ${err.message}\n`);
      return EXIT.failed;
    }
    throw err;
  }
}

function version(): string {
  // src/cli/ and dist/cli/ are both two levels below package.json.
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}
