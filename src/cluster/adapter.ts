import { RedisAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import type { Namespace } from 'socket.io';
import { Adapter, MessageType, type BroadcastOptions, type Session } from 'socket.io-adapter';
import { isDeltaRoom } from '../protocol/rooms.js';

/**
 * Where a replica's own deliveries go: the uWS transport's fast path when it runs (see
 * src/transport/uws-delivery.ts), Socket.IO's walk over the room's sockets otherwise.
 */
export interface LocalDelivery {
  /**
   * Delivers `packet` to this replica's matching sockets, except those in `held` (conflation:
   * each is off the room's fan-out already, see `pause`); false: not handled, walk them.
   */
  broadcast(adapter: Adapter, packet: Packet, opts: BroadcastOptions, held?: ReadonlySet<string>): boolean;
  /**
   * Socket `id` stops receiving `room`'s broadcasts through the transport's own fan-out (uWS: the
   * room's topic) until `resume`; what was queued for it before goes out first. Idempotent.
   */
  pause?(adapter: Adapter, id: string, room: string): void;
  /** Socket `id`, still in `room`, receives its broadcasts through the fan-out again. */
  resume?(adapter: Adapter, id: string, room: string): void;
  /** Before a join or a leave changes who receives what (uWS: flush batched publishes). */
  beforeMembershipChange(): void;
  /** Before a socket's first join (its id room), while it has no room yet. */
  joining(adapter: Adapter, id: string): void;
  /** After Socket.IO's own join: `isNew` on the socket's first join. */
  joined(adapter: Adapter, id: string, rooms: Set<string>, isNew: boolean): void;
}

/** Connection state recovery, as the adapter takes part in it (src/recovery/recovery.ts). */
export interface AdapterRecovery {
  /** The packet as this replica delivers it: with its offset appended when it gets one. */
  stamp(adapter: Adapter, packet: Packet, opts: BroadcastOptions): Packet;
  persist(adapter: Adapter, session: Session): void;
  restore(adapter: Adapter, pid: string, offset: string): Promise<Session>;
}

/** Conflation (src/realtime/conflation.ts), as the adapter takes part in it. */
export interface AdapterConflation {
  /**
   * Before a local delivery: the sockets that do not take `packet` now (it is held for them, to be
   * written when they drain, with an offset of its own); undefined: none. `packet` is as it was
   * broadcast, before its offset.
   */
  hold(adapter: Adapter, packet: Packet, opts: BroadcastOptions): ReadonlySet<string> | undefined;
  /** Socket `id` joins `rooms` again: what it held there is superseded by this subscribe. */
  joining(adapter: Adapter, id: string, rooms: Set<string>): void;
  /** Socket `id` left `room`: what it held there is dropped. */
  left(adapter: Adapter, id: string, room: string): void;
}

export interface HeraldAdapterDeps {
  /** The transport's fast path (src/transport/index.ts); undefined: Socket.IO's own delivery. */
  readonly delivery: LocalDelivery | undefined;
  readonly recovery: AdapterRecovery | undefined;
  /** CONFLATE_ROOMS; undefined: none. */
  readonly conflation?: AdapterConflation;
  /**
   * This replica's members that are not sockets (Server-Sent Events streams, src/sse/hub.ts):
   * handed every local delivery, as it is before the recovery offset is added.
   */
  readonly streams?: { deliver(packet: Packet, opts: BroadcastOptions): void };
  /** Told of every local delivery before it goes out (the delivery metrics). */
  readonly observe?: (adapter: Adapter, packet: Packet, opts: BroadcastOptions) => void;
  /**
   * What this replica delivers of a broadcast that came from Redis (`sender`: the publishing
   * adapter's uid, `emitter` for @socket.io/redis-emitter): the options to deliver with, rooms
   * left out, or undefined for nothing. Herald's own broadcasts pass as they are; it stops what a
   * sender outside herald puts into history rooms (src/history/foreign.ts).
   */
  readonly admitRemote?: (packet: Packet, opts: BroadcastOptions, sender: string) => BroadcastOptions | undefined;
}

export interface Packet {
  type: number;
  data?: unknown[];
  nsp?: string;
  id?: number;
}

type AdapterClass = abstract new (...args: any[]) => Adapter;

/**
 * herald's Socket.IO adapter: one class over the three ways replicas share rooms (none, Redis
 * pub/sub, sharded pub/sub). Each replica's own deliveries, whether the broadcast started here
 * or came from Redis, go through `deliver`: the recovery offset is appended, then the transport's
 * fast path sends it (`LocalDelivery`). Socket.IO's `persistSession` and `restoreSession` are
 * herald's recovery, on any of the three.
 *
 * Socket.IO's Redis adapters deliver what they receive through `Adapter.prototype.broadcast`
 * (`super.broadcast`), which a subclass cannot override; so the message handlers and the
 * publish of `broadcast` are restated here (a few lines each, checked against
 * @socket.io/redis-adapter 8.3 and socket.io-adapter 2.5).
 */
function herald<TBase extends AdapterClass>(Base: TBase, deps: HeraldAdapterDeps) {
  abstract class HeraldAdapter extends Base {
    /**
     * Publishes a broadcast to the other replicas. A promise: deliver here once it settles (the
     * sharded adapter's order: a replica delivers its own message after Redis has it, so a
     * message published through another replica right after it cannot overtake it anywhere).
     */
    protected abstract publishRemote(packet: Packet, opts: BroadcastOptions): Promise<unknown> | void;

    override broadcast(packet: any, opts: BroadcastOptions): any {
      packet.nsp = this.nsp.name;
      const published = opts.flags?.local || this.isLocalSocket(opts) ? undefined : this.publishRemote(packet, opts);
      if (!published) return this.deliver(packet, opts);
      return published.then(
        () => this.deliver(packet, opts),
        () => this.deliver(packet, opts),
      );
    }

    /**
     * To one connection of this replica: nothing for the others. With recovery on, Socket.IO
     * sends every `socket.emit` this way (so that it gets an offset); it must go out at once, in
     * order with what follows (a `herald:disconnect` right before the close).
     */
    private isLocalSocket(opts: BroadcastOptions): boolean {
      if (opts.rooms.size !== 1 || (opts.except?.size ?? 0) > 0) return false;
      return this.sids.has(opts.rooms.values().next().value as string);
    }

    /** A broadcast from Redis: another replica's, or a sender's outside herald (`HeraldAdapterDeps.admitRemote`). */
    deliverRemote(packet: Packet, opts: BroadcastOptions, sender: string): void {
      const admitted = deps.admitRemote ? deps.admitRemote(packet, opts, sender) : opts;
      if (admitted) this.deliver(packet, admitted);
    }

    /** This replica's share of a broadcast. */
    deliver(packet: Packet, opts: BroadcastOptions): void {
      // Held for slow connections (conflation): written later, or never; not counted as delivered now.
      const held = deps.conflation?.hold(this, packet, opts);
      const local = held ? { ...opts, except: new Set([...(opts.except ?? []), ...held]) } : opts;
      deps.observe?.(this, packet, local);
      if (this.nsp.name === '/') deps.streams?.deliver(packet, opts);
      const stamped = deps.recovery ? deps.recovery.stamp(this, packet, opts) : packet;
      if (deps.delivery?.broadcast(this, stamped, opts, held)) return;
      Adapter.prototype.broadcast.call(this, stamped as any, local);
    }

    override addAll(id: string, rooms: Set<string>): void {
      const isNew = !this.sids.has(id);
      const delivery = deps.delivery;
      delivery?.beforeMembershipChange();
      if (isNew) delivery?.joining(this, id);
      else deps.conflation?.joining(this, id, rooms);
      super.addAll(id, rooms);
      delivery?.joined(this, id, rooms, isNew);
    }

    override del(id: string, room: string): void {
      deps.delivery?.beforeMembershipChange();
      deps.conflation?.left(this, id, room);
      super.del(id, room);
    }

    override persistSession(session: Session): void {
      deps.recovery?.persist(this, session);
    }

    override async restoreSession(pid: string, offset: string): Promise<Session> {
      return deps.recovery ? deps.recovery.restore(this, pid, offset) : (null as unknown as Session);
    }
  }
  return HeraldAdapter;
}

/** Socket.IO calls `new` on what `io.adapter()` was given: an arrow function cannot be. */
function constructible(make: (nsp: Namespace) => Adapter): (nsp: Namespace) => Adapter {
  return function adapterFor(nsp: Namespace) {
    return make(nsp);
  };
}

/** Single node: nothing to publish. */
export function memoryAdapter(deps: HeraldAdapterDeps): (nsp: Namespace) => Adapter {
  class MemoryAdapter extends herald(Adapter, deps) {
    protected publishRemote(): void {}
  }
  return constructible((nsp) => new MemoryAdapter(nsp));
}

/** What of RedisAdapter herald uses (its `onmessage` is private in the typings, and restated here). */
const RedisBase = RedisAdapter as unknown as new (...args: any[]) => Adapter & {
  readonly uid: string;
  readonly parser: { encode(v: unknown): Buffer; decode(b: Buffer): unknown };
};

/** Redis pub/sub (@socket.io/redis-adapter's `createAdapter`). */
export function redisAdapter(pub: unknown, sub: unknown, opts: { key: string }, deps: HeraldAdapterDeps): (nsp: Namespace) => Adapter {
  class HeraldRedisAdapter extends herald(RedisBase, deps) {
    /** This adapter's uid as msgpack writes it first in each message, to skip its own echoes undecoded. */
    private readonly echo = Buffer.concat([Buffer.from([0x93, 0xa0 | 6]), Buffer.from(String(this.uid))]);

    protected publishRemote(packet: Packet, opts: BroadcastOptions): void {
      const self = this as any;
      const raw = { rooms: [...opts.rooms], except: [...new Set(opts.except)], flags: opts.flags };
      let channel: string = self.channel;
      if (opts.rooms.size === 1) channel += `${opts.rooms.values().next().value as string}#`;
      self.pubClient.publish(channel, this.parser.encode([this.uid, packet, raw]));
    }

    onmessage(_pattern: unknown, channelBuf: Buffer | string, msg: Buffer): void {
      const self = this as any;
      const channel = channelBuf.toString();
      if (!channel.startsWith(self.channel)) return;
      const room = channel.slice(self.channel.length, -1);
      if (room !== '' && !this.rooms.has(room)) return;
      // Every replica hears its own broadcasts back; they were delivered here already.
      if (this.echo.length === 8 && msg.length > 8 && msg.subarray(0, 8).equals(this.echo)) return;
      const [uid, packet, raw] = this.parser.decode(msg) as [string, Packet | undefined, { rooms: string[]; except: string[]; flags?: object }];
      if (uid === this.uid || !packet) return;
      packet.nsp ??= '/';
      if (packet.nsp !== this.nsp.name) return;
      this.deliverRemote(packet, { rooms: new Set(raw.rooms), except: new Set(raw.except), flags: raw.flags ?? {} }, uid);
    }
  }
  return constructible((nsp) => new HeraldRedisAdapter(nsp, pub, sub, opts));
}

/** Redis sharded pub/sub (@socket.io/redis-adapter's `createShardedAdapter`, dynamic channels). */
export function shardedAdapter(pub: unknown, sub: unknown, opts: { channelPrefix: string }, deps: HeraldAdapterDeps): (nsp: Namespace) => Adapter {
  // The class is not exported; its factory makes one.
  const ShardedRedisAdapter = shardedClass();
  class HeraldShardedAdapter extends herald(ShardedRedisAdapter, deps) {
    protected publishRemote(packet: Packet, opts: BroadcastOptions): Promise<unknown> {
      const self = this as any;
      return self.publishAndReturnOffset({ type: MessageType.BROADCAST, data: { packet, opts: { rooms: [...opts.rooms], except: [...(opts.except ?? [])], flags: opts.flags } } });
    }

    onMessage(message: any, offset?: string): void {
      const isBroadcast = message.type === MessageType.BROADCAST && message.data.requestId === undefined;
      if (!isBroadcast || message.uid === (this as any).uid || message.nsp !== this.nsp.name) {
        (ShardedRedisAdapter.prototype as any).onMessage.call(this, message, offset);
        return;
      }
      const o = message.data.opts as { rooms: string[]; except: string[]; flags?: object };
      this.deliverRemote(message.data.packet as Packet, { rooms: new Set(o.rooms), except: new Set(o.except), flags: o.flags ?? {} }, String(message.uid));
    }

    /** A delta room (src/history/delta.ts) is delivered to locally only: no shard channel of its own. */
    shouldUseASeparateNamespace(room: string): boolean {
      return !isDeltaRoom(room) && (ShardedRedisAdapter.prototype as any).shouldUseASeparateNamespace.call(this, room);
    }

    /** Socket.IO's own offsets (the streams adapter's) are not used: herald's come from `deliver`. */
    addOffsetIfNecessary(): void {}
  }
  return constructible((nsp) => new HeraldShardedAdapter(nsp, pub, sub, { ...opts, subscriptionMode: 'dynamic' }));
}

/**
 * @socket.io/redis-adapter exports only a factory for its sharded adapter, so the class is taken
 * from one instance, made once over a stand-in namespace and stand-in clients that subscribe
 * nothing, and thrown away.
 */
let shardedBase: (new (...args: any[]) => Adapter) | undefined;
function shardedClass(): new (...args: any[]) => Adapter {
  if (shardedBase) return shardedBase;
  const nsp = { name: '/', server: { encoder: {}, opts: {} } };
  const client = { ssubscribe: async () => 0, sunsubscribe: async () => 0, on: () => client };
  const probe = createShardedAdapter(client, client, { subscriptionMode: 'static' })(nsp);
  shardedBase = Object.getPrototypeOf(probe).constructor as new (...args: any[]) => Adapter;
  return shardedBase;
}
