import type { Server } from 'socket.io';
import { ReplyError } from 'ioredis';
import { HeraldError } from '../errors.js';
import { assertDepth, containsBinary } from '../limits/json-depth.js';
import type { Metrics } from '../observability/metrics.js';
import { throttle, type Logger } from '../observability/logger.js';
import type { HistoryRooms } from '../history/rooms.js';
import { validateEventName, type MessageId, type MessageMeta } from '../protocol/events.js';
import { validateRoom, type RoomName } from '../protocol/rooms.js';
import { messageIds } from './message-id.js';

/** Socket.IO packet type of an event (socket.io-parser's PacketType.EVENT). */
const SOCKET_IO_EVENT = 2;

/** Most rooms one publish may name. */
export const PUBLISH_MAX_ROOMS = 100;

export interface PublishRequest {
  readonly rooms: readonly RoomName[];
  readonly event: string;
  readonly data: unknown;
}

export interface PublishResult {
  /** Identifies the publish; it is `meta.id` in rooms without history. */
  readonly id: MessageId;
  readonly ts: number;
  /** Per room, the `meta.id` its subscribers receive (the stream offset in history rooms). */
  readonly ids: Readonly<Record<RoomName, MessageId>>;
  /** Present when `dedupeKey` had been published before in a history room: its id there is the first publish's. */
  readonly duplicate?: true;
}

export interface Publisher {
  /**
   * Delivers `event` to every subscriber of each room on every replica; a subscriber of two of
   * the rooms receives it once per room, each with its own `meta.room`.
   * Rooms without history: at-most-once over the bus; local subscribers receive it even while the
   * bus is down. History rooms: appended and broadcast atomically; if the history is unreachable
   * the publish fails with `unavailable` and nobody receives it. A multi-room publish that fails
   * may have reached some of its history rooms.
   */
  /**
   * `dedupeKey` (ingest): in history rooms, a key already published is not published again
   * (at-least-once sources become exactly-once there); other rooms ignore it.
   */
  publish(req: PublishRequest, source: PublishSource, dedupeKey?: string): Promise<PublishResult>;
}

export type PublishSource = 'http' | 'client' | 'redis-stream' | 'amqp';

export function createPublisher(io: Server, metrics: Metrics, history: HistoryRooms | undefined, timeoutMs: number, logger: Logger): Publisher {
  const nextId = messageIds();
  const refusedLog = throttle(10_000);
  const run = async (req: PublishRequest, source: PublishSource, dedupeKey: string | undefined): Promise<PublishResult> => {
    const id = nextId();
    const ts = Date.now();
    // No prototype: rooms may be named `constructor` or `__proto__`, which `{}` already "has".
    const ids: Record<RoomName, MessageId> = Object.create(null);
    const appended = req.rooms.flatMap((room) => {
      const policy = history?.policyFor(room);
      return policy ? [{ room, policy }] : [];
    });
    // History keeps JSON: a Buffer would come back as {type: "Buffer", data: [...]}.
    if (appended.length > 0 && containsBinary(req.data)) {
      throw new HeraldError('bad_request', `Binary data cannot be kept in history (${appended.map((a) => a.room).join(', ')}); publish it to a room without history, or encode it (base64).`);
    }
    let duplicate = false;
    const done = await Promise.allSettled(appended.map(({ room, policy }) => history!.backend.publish(room, req.event, req.data, policy, dedupeKey)));
    const failures = done.flatMap((d) => (d.status === 'rejected' ? [d.reason as Error] : []));
    if (failures.length > 0) {
      // One write whose outcome is unknown makes the whole publish's unknown.
      const unknown = failures.find((err) => !notSent(err));
      if (unknown) throw new HeraldError('publish_timeout', undefined, { cause: unknown });
      // Reachable, but refusing writes (out of memory, a read-only replica): not "down", and not
      // mended by another replica, which writes to the same Redis.
      const refused = failures.find((err) => err instanceof ReplyError);
      if (refused) {
        const reply = refused.message.split('\n')[0]!.slice(0, 200);
        if (refusedLog.due()) logger.warn({ err: reply, rooms: appended.map((a) => a.room) }, 'redis refused a history write; the publish was refused (unavailable)');
        throw new HeraldError('unavailable', `Redis refused the write (${reply}); nothing was published. It is reachable but does not take writes (out of memory, a read-only replica): retry once it does.`, { cause: refused });
      }
      throw new HeraldError('unavailable', undefined, { cause: failures[0] });
    }
    for (const d of done) {
      if (d.status !== 'fulfilled') continue;
      ids[d.value.entry.room] = d.value.entry.id;
      duplicate ||= d.value.duplicate;
    }
    if (duplicate) metrics.publishDuplicate();
    const adapter = io.of('/').adapter;
    for (const room of req.rooms) {
      if (Object.hasOwn(ids, room)) continue;
      const meta: MessageMeta = { room, id, ts };
      // What io.to(room).emit() does, but awaited: the sharded (cluster) adapter publishes
      // asynchronously, and answering only once the message is in Redis keeps one publisher's
      // messages in order even when its requests land on different replicas.
      await adapter.broadcast({ type: SOCKET_IO_EVENT, data: [req.event, req.data, meta], nsp: '/' }, { rooms: new Set([room]), except: new Set() });
      ids[room] = id;
    }
    metrics.published(req.rooms.length, source);
    return { id, ts, ids, ...(duplicate ? { duplicate: true as const } : {}) };
  };
  return {
    async publish(req, source, dedupeKey) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new HeraldError('publish_timeout')), timeoutMs);
      });
      const work = run(req, source, dedupeKey);
      // Past the deadline its outcome was answered as unknown (publish_timeout, counted below).
      work.catch(() => undefined);
      try {
        return await Promise.race([work, deadline]);
      } catch (err) {
        if (err instanceof HeraldError && err.code === 'publish_timeout') metrics.publishUnconfirmed();
        throw err;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/**
 * A write that never left this replica (no connection to send it on, the client closed) or that
 * Redis refused with an error reply: it was not published. Anything else (a timeout, a connection
 * lost while the command waited for its answer) may have been.
 */
function notSent(err: Error): boolean {
  return err instanceof ReplyError || /isn't writeable|isn't ready|Connection is closed/.test(err.message);
}

const ALLOWED_FIELDS = new Set(['room', 'rooms', 'event', 'data']);

/** Validates a publish body: `{room, event, data}` or `{rooms: [...], event, data}`, nothing else. */
export function parsePublishRequest(body: unknown): PublishRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HeraldError('bad_request', 'The body must be a JSON object {room, event, data}.');
  }
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((k) => !ALLOWED_FIELDS.has(k));
  if (unknown.length > 0) throw new HeraldError('bad_request', `Unknown field(s): ${unknown.join(', ')}.`);
  const hasRoom = Object.hasOwn(fields, 'room');
  const hasRooms = Object.hasOwn(fields, 'rooms');
  if (hasRoom === hasRooms) throw new HeraldError('bad_request', 'Send exactly one of "room" or "rooms".');
  if (!Object.hasOwn(fields, 'event')) throw new HeraldError('bad_request', 'Missing field "event".');
  let rooms: RoomName[];
  if (hasRoom) {
    rooms = [validateRoom(fields.room)];
  } else {
    const list = fields.rooms;
    if (!Array.isArray(list) || list.length === 0 || list.length > PUBLISH_MAX_ROOMS) {
      throw new HeraldError('bad_request', `"rooms" must be an array of 1 to ${PUBLISH_MAX_ROOMS} room names.`);
    }
    rooms = [...new Set(list.map(validateRoom))];
  }
  assertDepth(fields.data);
  return { rooms, event: validateEventName(fields.event), data: fields.data ?? null };
}
