/** Messages between the fans scenario's coordinator and its client processes (fans/worker.ts). */

/** Rooms and events of a live-score page (the publisher sends these names). */
export const ALL_ROOM = 'scores:all';
export const matchRoom = (match: number): string => `scores:m-${match}`;
export const userId = (fan: number): string => `fan-${fan}`;
/** Event names: short, so a client tells them apart by one byte. */
export const EVENTS = { all: 'all', match: 'm', user: 'u' } as const;

export interface FansPlan {
  /** Replica base URLs the balancer sees up (fan.ts `Balancer`). */
  urls: string[];
  /** Fans `from` to `to - 1` (global numbers) live in this process. */
  from: number;
  to: number;
  matches: number;
  /** HS256 secret the fans sign their tokens with (`sub` = `fan-<n>`). */
  jwtSecret: string;
  localAddresses: string[];
  /** Connection attempts in flight at once in this process, for the first connections. */
  concurrency: number;
  /**
   * Send `X-Forwarded-For: <a distinct 10.x.y.z per fan>`, as a balancer with `option forwardfor`
   * does; the replicas then run with TRUST_PROXY=1.
   */
  forwardedFor: boolean;
}

export type FansCommand =
  | ({ cmd: 'open' } & FansPlan)
  | { cmd: 'status' }
  /** Starts a named measurement window: latencies and drops count toward it from now. */
  | { cmd: 'phase'; name: string }
  /** The replicas the balancer's health check sees up from now on. */
  | { cmd: 'urls'; urls: string[] }
  /** Per-phase results; `accepted` (what the publisher got 200 for) turns into missing counts. */
  | { cmd: 'report'; accepted: Accepted }
  | { cmd: 'close' };

/** Publishes accepted so far: to the all-scores room, per match room, per user. */
export interface Accepted {
  all: number;
  match: Record<string, number>;
  user: Record<string, number>;
}

export interface FansStatus {
  cmd: 'status';
  fans: number;
  /** Connected, namespace joined and every room subscribed (or the session recovered). */
  live: number;
  /** Wall-clock ms when the last fan that dropped in this phase was live again; 0 if none. */
  lastBackAt: number;
  /** Fans by state (connecting, subscribing, live, waiting to retry): where the stragglers are. */
  states: Record<string, number>;
  /** Fans that dropped in the current phase. */
  droppedInPhase: number;
  /** Deliveries so far in the current phase (live and replayed). */
  delivered: number;
  /** Wall-clock ms at which the last fan so far became live for the first time. */
  lastFirstLiveAt: number;
  /** Wall-clock ms of each fan's first time live, counted per second (ms / 1000 → count). */
  firstLivePerSecond: Record<string, number>;
}

export interface PhaseReport {
  /** Live deliveries to every fan (ms from the publish call). */
  latency: [number, number][];
  /** Live deliveries to fans that did not drop in the phase. */
  healthyLatency: [number, number][];
  /** Per broadcast (all-scores seq): the latest live arrival (wall-clock ms) and how many fans got it live, healthy fans only. */
  broadcasts: Record<string, [number, number]>;
  delivered: number;
  /** Deliveries while a fan was catching up (replay after `since`, or a recovered session). */
  replayed: number;
  drops: number;
  /** Failed connection attempts, by kind (see `refusalKind`). */
  refusals: Record<string, number>;
  reconnects: number;
  redispatched: number;
  /** Fans live again after a drop, per 100 ms of wall-clock time (`Math.floor(ms / 100)` → count). */
  backPer100ms: Record<string, number>;
  /** Reconnects whose Socket.IO session came back whole (same sid, built-in recovery). */
  sessionsRecovered: number;
  /** Subscribes with `since` answered `recovered: true` / false. */
  sinceRecovered: number;
  sinceNotRecovered: number;
  resets: number;
}

export interface FansReport {
  cmd: 'report';
  phases: Record<string, PhaseReport>;
  fans: number;
  /** History messages never received (accepted × subscribers − received once), all-scores and match rooms. */
  missingAll: number;
  missingMatch: number;
  /** Fans not live when the report was taken (still reconnecting), and the history messages missing on the fans that were. */
  notLive: number;
  missingOnLive: number;
  duplicates: number;
  /** User-room messages received against those accepted (at-most-once rooms). */
  userReceived: number;
  userExpected: number;
  /** Per phase: fans that dropped in it, and of those, how many hold every history message now. */
  droppedFans: Record<string, number>;
  droppedComplete: Record<string, number>;
}

export type FansReply = { cmd: 'ready' } | { cmd: 'opened' } | FansStatus | FansReport | { cmd: 'urls' } | { cmd: 'phase' } | { cmd: 'closed' } | { cmd: 'error'; message: string };
