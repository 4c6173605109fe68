import { DroppingRelay } from '../../loadtest/harness/jitter.js';

/** A TCP relay on a loopback port in front of one port, whose connections a test can reset (the jitter scenario's). */
export interface Relay {
  readonly url: string;
  /** Sends new connections to `port` from now on (a balancer that moved on). */
  retarget(port: number): void;
  /** Resets every open connection on both sides (TCP RST), as a network drop would; returns how many. */
  resetAll(): number;
  /** Stops reading what the server sends on every connection, open or new (a client that stops reading), until `release`. */
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

export async function startRelay(targetPort: number): Promise<Relay> {
  const relay = await DroppingRelay.start([{ host: '127.0.0.1', port: targetPort }]);
  return {
    url: relay.url,
    retarget: (port) => relay.retarget([{ host: '127.0.0.1', port }]),
    resetAll: () => relay.dropAll(),
    hold: () => relay.hold(),
    release: () => relay.release(),
    close: () => relay.close(),
  };
}
