import type { PusherApp } from './pusher.js';

/** Messages between the harness coordinator and its client processes. */
export type WorkerCommand =
  | {
      cmd: 'open';
      urls: string[];
      count: number;
      rooms: string[];
      /** Where in `rooms` this worker's first connection starts, so rooms spread over workers. */
      roomOffset: number;
      localAddresses: string[];
      auth?: object;
      /** Set: the clients speak the Pusher protocol to this app (soketi) instead of Socket.IO. */
      pusher?: PusherApp;
      /** `seq`: parse every event, check sequence numbers; `count`: count, parse one in `sampleEvery`. */
      track: 'seq' | 'count';
      sampleEvery: number;
      concurrency: number;
      /** Subscribe with `delta: "fossil"` and apply the deltas (every event is parsed); a delta on another base is counted in `wrongBases`. */
      delta?: boolean;
      /**
       * Follow the room over Server-Sent Events (`GET /v1/stream?room=`, sseclient.ts) instead of
       * Socket.IO; `drop` brings a stream back with its `Last-Event-ID`. `bytes` counts the `data:` text's length (its bytes, for ASCII payloads).
       */
      sse?: boolean;
    }
  | { cmd: 'report' }
  | { cmd: 'drop'; every: number; phase: number; concurrency: number }
  | { cmd: 'churn'; urls: string[]; rooms: string[]; localAddresses: string[]; cycles: number; concurrency: number }
  | { cmd: 'close' };

export interface ConnectionReport {
  room: string;
  received: number;
  /** Distinct sequence numbers received. */
  unique: number;
  duplicates: number;
  reconnects: number;
  recovered: number;
  unrecovered: number;
}

export interface WorkerReport {
  cmd: 'report';
  connected: number;
  failedConnects: number;
  /** Events received since the last report. */
  delivered: number;
  /** Latency samples (ms) since the last report. */
  samples: number[];
  /** Bytes of the event frames (their WebSocket payloads) since the last report. */
  bytes: number;
  /** Deltas applied, and deltas not on the last message held (never applied), since the last report. */
  deltas: number;
  wrongBases: number;
  perConnection: ConnectionReport[];
}

export type WorkerReply =
  | { cmd: 'ready' }
  | { cmd: 'opened'; connected: number; failedConnects: number }
  | WorkerReport
  | { cmd: 'dropped'; count: number }
  | { cmd: 'churned'; ok: number; failed: number; ms: number }
  | { cmd: 'closed' }
  | { cmd: 'error'; message: string };
