import { createRequire } from 'node:module';
import type { LocalDelivery } from '../cluster/adapter.js';
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

/** The transport a replica serves on, chosen before anything is built: herald's adapter delivers through it. */
export interface Transport {
  /**
   * Where herald's adapter hands this replica's deliveries (src/cluster/adapter.ts): uWS's fast
   * path, which the uWS transport makes when it attaches to Socket.IO in `listen` (no socket can
   * exist before); undefined on the Node transport (Socket.IO's own walk over the room).
   */
  readonly delivery: LocalDelivery | undefined;
  /** Binds the port and serves Socket.IO and the HTTP routes. */
  listen(opts: Omit<TransportOptions, 'delivery'>): Promise<{ kind: TransportKind; port: number }>;
  /** Stops accepting TCP connections (nothing before `listen`); existing ones are closed by `io.close()`. */
  stopListening(): void;
}

/** uWS when asked for and its binary loads here; the Node transport otherwise, with a warning if uWS was asked for. */
export function createTransport(wanted: TransportKind, logger: Logger): Transport {
  const loaded = wanted === 'uws' ? loadUws() : undefined;
  if (loaded && 'error' in loaded) {
    logger.warn({ err: loaded.error.message }, 'uWebSockets.js cannot load on this platform; using the Node http transport (TRANSPORT=node) instead');
  }
  const uws = loaded && 'uws' in loaded ? loaded.uws : undefined;
  const fast: { current: LocalDelivery | undefined } = { current: undefined };
  let running: RunningTransport | undefined;
  return {
    delivery: uws ? forwardingTo(fast) : undefined,
    async listen(opts) {
      running = await (uws ? startUwsTransport(uws, { ...opts, delivery: fast }) : startNodeTransport({ ...opts, delivery: fast }));
      return { kind: running.kind, port: running.port };
    },
    stopListening: () => running?.stopListening(),
  };
}

/** Delivers through `fast.current` once the transport has made it; until then Socket.IO's walk does (over no socket). */
function forwardingTo(fast: { current: LocalDelivery | undefined }): LocalDelivery {
  return {
    broadcast: (adapter, packet, opts, held) => fast.current?.broadcast(adapter, packet, opts, held) ?? false,
    pause: (adapter, id, room) => fast.current?.pause?.(adapter, id, room),
    resume: (adapter, id, room) => fast.current?.resume?.(adapter, id, room),
    beforeMembershipChange: () => fast.current?.beforeMembershipChange(),
    joining: (adapter, id) => fast.current?.joining(adapter, id),
    joined: (adapter, id, rooms, isNew) => fast.current?.joined(adapter, id, rooms, isNew),
  };
}
