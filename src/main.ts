/**
 * The process entry point of `npm start`, the image and `herald start`, and the only file that runs
 * the gateway from process.env, handles its signals or exits it (src/cli.ts does the same for the
 * short-lived commands).
 */
import { createApp, type HeraldApp } from './app.js';
import { ConfigError, loadConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { configWarnings } from './config/warnings.js';
import { createLogger, routeConsole } from './observability/logger.js';

/**
 * Extra time past the drain period before a stuck shutdown is cut short with exit code 1, plus
 * twice REDIS_TIMEOUT_SECONDS: the longest an ingest's last publish and the Redis work after the
 * connections closed may each take (src/lifecycle/drain.ts).
 */
const SHUTDOWN_GRACE_MS = 10_000;

let config: Config;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`herald: ${err.message}\n`);
  process.exit(1);
}

const logger = createLogger(config.logLevel, config.replicaId);
routeConsole(logger);
for (const { message, ...fields } of configWarnings(config, process.env)) logger.warn(fields, message);

let app: HeraldApp;
try {
  app = createApp(config, logger);
} catch (err) {
  logger.fatal({ err }, 'could not start');
  process.exit(1);
}

function shutdown(signal: NodeJS.Signals): void {
  if (app.phase === 'draining' || app.phase === 'stopped') {
    logger.info({ signal }, 'already draining');
    return;
  }
  logger.info({ signal }, 'shutdown requested');
  setTimeout(() => {
    logger.error('drain did not finish in time; exiting');
    process.exit(1);
  }, (config.drainDelaySeconds + config.drainSeconds) * 1000 + 2 * config.redisTimeoutSeconds * 1000 + SHUTDOWN_GRACE_MS).unref();
  app.drain().then(
    () => process.exit(0),
    (err: unknown) => {
      logger.error({ err }, 'drain failed');
      process.exit(1);
    },
  );
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

try {
  const { port, transport, redis } = await app.start();
  logger.info({ port, transport, redis }, 'listening');
} catch (err) {
  logger.fatal({ err }, 'could not start');
  process.exit(1);
}
