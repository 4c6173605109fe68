import { createRequire } from 'node:module';
import type { TransportKind } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { startNodeTransport } from './node.js';
import type { RunningTransport, TransportOptions } from './types.js';
import { startUwsTransport, type UwsModule } from './uws.js';

export type { RunningTransport, TransportOptions } from './types.js';

/**
 * Loads the native uWebSockets.js binary directly. The npm mirror's entry point silently swaps in a
 * slow pure-JS shim when the binary cannot load; herald would rather use its Node transport and say so.
 */
export function loadUws(): { uws: UwsModule } | { error: Error } {
  const binary = `uWebSockets.js/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  try {
    return { uws: createRequire(import.meta.url)(binary) as UwsModule };
  } catch (err) {
    return { error: err as Error };
  }
}

export async function startTransport(
  wanted: TransportKind,
  opts: TransportOptions,
  logger: Logger,
): Promise<RunningTransport> {
  if (wanted === 'uws') {
    const loaded = loadUws();
    if ('uws' in loaded) return startUwsTransport(loaded.uws, opts);
    logger.warn(
      { err: loaded.error.message },
      'uWebSockets.js cannot load on this platform; using the Node http transport (TRANSPORT=node) instead',
    );
  }
  return startNodeTransport(opts);
}
