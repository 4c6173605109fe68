import type { Socket } from 'socket.io-client';
import { applyDelta } from './fossil.js';

/** Second argument of every message: where it comes from and which one it is. */
export interface MessageMeta {
  room: string;
  /** The message's id in its room (`<ms>-<seq>`); send it as `since` to continue after it. */
  id: string;
  /** Publish time, ms since the epoch. */
  ts: number;
}

export interface SubscribeOptions {
  /** The last `meta.id` you have: receive what followed it. Kept and sent again by the module on every re-subscribe. */
  since?: string;
  /** How many of the room's newest messages to receive first (history rooms, 0 to 100). */
  last?: number;
  /** `"fossil"`: receive deltas in rooms that send them (HISTORY_ROOMS ` delta`); the handlers still get whole payloads. */
  delta?: 'fossil';
}

/** The server's answer to a subscribe. */
export interface SubscribeAck {
  ok: boolean;
  room?: string;
  /** Present when `since` was sent: false when the server could not send everything after it. */
  recovered?: boolean;
  offset?: string;
  error?: { code: string; message: string };
}

export type MessageHandler = (data: unknown, meta: MessageMeta) => void;

export interface HeraldClientOptions {
  /**
   * A room's stream has a gap the module cannot fill (a `herald:reset`, or a re-subscribe that
   * answered `recovered: false`): reload that room's state. Messages keep coming.
   */
  onReset?: (room: string, reason: 'reset' | 'not_recovered') => void;
  /** A re-subscribe failed (the module does not retry it until the next reconnect). */
  onError?: (room: string, error: unknown) => void;
  /** Milliseconds to wait for a subscribe's answer. @default 10000 */
  ackTimeoutMs?: number;
}

interface Room {
  readonly options: SubscribeOptions;
  /** The last message's id here, or the position an ack gave. */
  id?: string;
  /** The payload (JSON, UTF-8) of message `textId`: what the next delta applies to. */
  text?: Uint8Array;
  textId?: string;
  /** A re-subscribe is under way: deltas are dropped until it is answered. */
  resyncing: boolean;
}

/** Counts of what the module did, for tests and dashboards. */
export interface HeraldClientStats {
  /** Deltas applied. */
  deltas: number;
  /** Deltas not applied (base not the last message held, or a bad delta), each followed by a re-subscribe. */
  mismatches: number;
  /** Messages dropped as already received (a re-subscribe's replay overlapping what came live). */
  duplicates: number;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/**
 * herald's rooms over a socket.io-client socket: subscriptions that survive reconnects and
 * `herald:reset` (each re-subscribe sends `since`, the last id received), messages in order with
 * no duplicate, and, in rooms that send them, fossil deltas applied before any handler sees them:
 * a delta is applied only to the message it names as its base; anything else is never applied
 * and the room is re-subscribed from its last message.
 *
 * ```ts
 * const herald = new HeraldClient(io(url, { transports: ['websocket'] }));
 * herald.on('score', (score, meta) => render(score));
 * await herald.subscribe('scores:match-42', { last: 1, delta: 'fossil' });
 * ```
 */
export class HeraldClient {
  readonly stats: HeraldClientStats = { deltas: 0, mismatches: 0, duplicates: 0 };
  private readonly rooms = new Map<string, Room>();
  private readonly handlers = new Map<string, Set<MessageHandler>>();
  private connectedOnce: boolean;

  constructor(
    readonly socket: Socket,
    private readonly options: HeraldClientOptions = {},
  ) {
    this.connectedOnce = socket.connected;
    socket.onAny((event: string, data: unknown, meta: unknown) => this.receive(event, data, meta));
    socket.on('connect', () => {
      // The first connect subscribes through `subscribe`; every later one re-subscribes each room.
      if (!this.connectedOnce) {
        this.connectedOnce = true;
        return;
      }
      for (const room of this.rooms.keys()) this.resubscribe(room);
    });
  }

  /** Calls `handler` with every message named `event` in the subscribed rooms, whole. Returns the function that removes it. */
  on(event: string, handler: MessageHandler): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  /** Subscribes to `room`; rejects with the server's `{code, message}` when it refuses. */
  subscribe(room: string, options: SubscribeOptions = {}): Promise<SubscribeAck> {
    const state: Room = { options, resyncing: true, ...(options.since !== undefined ? { id: options.since } : {}) };
    this.rooms.set(room, state);
    return new Promise((resolve, reject) => {
      this.ask(room, state, { room, ...options }, (err, ack) => {
        if (err) {
          if (this.rooms.get(room) === state) this.rooms.delete(room);
          reject(err);
        } else resolve(ack!);
      });
    });
  }

  async unsubscribe(room: string): Promise<void> {
    this.rooms.delete(room);
    await this.socket.timeout(this.options.ackTimeoutMs ?? 10_000).emitWithAck('unsubscribe', { room });
  }

  /** The last message id held in `room` (what the next re-subscribe sends as `since`). */
  position(room: string): string | undefined {
    return this.rooms.get(room)?.id;
  }

  /**
   * Sends a subscribe. Its answer is taken in Socket.IO's ack callback, synchronously: a delta
   * that follows the answer in the same read must find the room settled (a promise would settle
   * it only after that delta was handled).
   */
  private ask(room: string, state: Room, arg: object, done: (err: unknown, ack?: SubscribeAck) => void): void {
    state.resyncing = true;
    this.socket.timeout(this.options.ackTimeoutMs ?? 10_000).emit('subscribe', arg, (err: unknown, ack: SubscribeAck) => {
      const current = this.rooms.get(room) === state;
      if (err || !ack?.ok) {
        if (current) state.resyncing = false;
        done(err ?? Object.assign(new Error(ack?.error?.message ?? 'subscribe refused'), { code: ack?.error?.code }));
        return;
      }
      if (current) this.settled(state, ack);
      done(undefined, ack);
    });
  }

  /** Subscribes again from the last message held (after a reconnect, a reset, a delta on another base). */
  private resubscribe(room: string): void {
    const state = this.rooms.get(room);
    if (!state) return;
    const { last, ...rest } = state.options;
    const arg = state.id !== undefined ? { room, ...rest, since: state.id } : { room, ...rest, ...(last !== undefined ? { last } : {}) };
    this.ask(room, state, arg, (err, ack) => {
      if (err) this.options.onError?.(room, err);
      else if (ack!.recovered === false && this.rooms.get(room) === state) this.options.onReset?.(room, 'not_recovered');
    });
  }

  /** A subscribe was answered: everything up to `offset` came before the answer. */
  private settled(state: Room, ack: SubscribeAck): void {
    state.resyncing = false;
    if (ack.offset !== undefined && (state.id === undefined || compareIds(ack.offset, state.id) > 0)) state.id = ack.offset;
  }

  private receive(event: string, data: unknown, meta: unknown): void {
    if (event === 'herald:reset') {
      const room = (data as { room?: unknown } | null)?.room;
      if (typeof room !== 'string' || !this.rooms.has(room)) return;
      const state = this.rooms.get(room)!;
      const offset = (data as { offset?: unknown }).offset;
      if (typeof offset === 'string') state.id = offset;
      state.text = undefined;
      this.options.onReset?.(room, 'reset');
      this.resubscribe(room);
      return;
    }
    if (typeof meta !== 'object' || meta === null) return;
    const m = meta as MessageMeta & { base?: unknown };
    const state = typeof m.room === 'string' ? this.rooms.get(m.room) : undefined;
    if (!state || typeof m.id !== 'string') return;
    if (m.base !== undefined) {
      if (state.resyncing) return;
      const whole = this.applied(state, m.base, data);
      if (whole === undefined) {
        this.stats.mismatches++;
        this.resubscribe(m.room);
        return;
      }
      this.stats.deltas++;
      data = whole;
    } else {
      if (state.id !== undefined && compareIds(m.id, state.id) <= 0) {
        this.stats.duplicates++;
        return;
      }
      if (state.options.delta) state.text = utf8.encode(JSON.stringify(data));
    }
    if (state.options.delta) state.textId = m.id;
    state.id = m.id;
    const { base: _base, ...clean } = m;
    for (const h of this.handlers.get(event) ?? []) h(data, clean);
  }

  /** The whole payload of a delta on `base`, or undefined unless `base` is the last message held and the delta applies. */
  private applied(state: Room, base: unknown, delta: unknown): unknown {
    if (typeof base !== 'string' || typeof delta !== 'string' || base !== state.id || base !== state.textId || !state.text) return undefined;
    try {
      const text = applyDelta(state.text, delta);
      const whole = JSON.parse(fromUtf8.decode(text)) as unknown;
      state.text = text;
      return whole;
    } catch {
      return undefined;
    }
  }
}

/** Orders two stream ids (`<ms>-<seq>`). */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}
