import { EXIT, parseOptions, UsageError, type Command } from './command.js';

/** `herald start`: the gateway itself, the same code as `npm start` (src/main.ts). */
export const start: Command = {
  name: 'start',
  summary: 'run the gateway (as npm start), configured by environment variables',
  help: `Usage: herald start

Runs the gateway, configured by environment variables (docs/reference/configuration.md lists them;
herald check finds mistakes in them). Logs JSON lines on stdout, with a warning for every variable that
looks like a misspelled setting (PUBLISH_KEY for PUBLISH_KEYS). Exits 1 at once, listing every
problem, when the configuration is invalid. SIGTERM or SIGINT drains it over DRAIN_SECONDS, then it
exits 0.

npm start and the container image also give node --max-semi-space-size=8 (a smaller young
generation, see docs/reference/deploy.md); for the same here: NODE_OPTIONS=--max-semi-space-size=8 herald start
`,
  async run(args, io) {
    let options;
    try {
      options = parseOptions(args, {});
    } catch (err) {
      throw new UsageError(`${(err as Error).message}: herald start takes no options; settings are environment variables (PORT=3000 herald start)`);
    }
    if (!options) {
      io.out(this.help);
      return EXIT.ok;
    }
    await import('../main.js');
    return EXIT.ok;
  },
};
