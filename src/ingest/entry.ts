import { HeraldError } from '../errors.js';
import { parsePublishRequest, type PublishRequest } from '../publish/service.js';

/**
 * The fields of one ingest entry, as a Redis Stream entry or an AMQP message carries them:
 * `room` (or `rooms`, a JSON array), `event`, and `data` as JSON text.
 */
export interface RawEntry {
  room?: string;
  rooms?: string;
  event?: string;
  data?: string | Buffer;
}

/**
 * Validates an entry exactly like a publish request (room and event rules, data depth) plus a size
 * limit on `data`; throws a HeraldError whose message says what is wrong.
 */
export function parseEntry(raw: RawEntry, maxBytes: number): PublishRequest {
  const size = raw.data === undefined ? 0 : Buffer.byteLength(raw.data);
  if (size > maxBytes) throw new HeraldError('payload_too_large', `"data" is ${size} bytes; the limit is ${maxBytes}.`);
  let data: unknown = null;
  if (raw.data !== undefined && size > 0) {
    try {
      data = JSON.parse(raw.data.toString());
    } catch {
      throw new HeraldError('invalid_json', '"data" is not valid JSON.');
    }
  }
  let rooms: unknown;
  if (raw.rooms !== undefined) {
    try {
      rooms = JSON.parse(raw.rooms);
    } catch {
      throw new HeraldError('invalid_json', '"rooms" is not a JSON array.');
    }
  }
  return parsePublishRequest({ ...(raw.rooms !== undefined ? { rooms } : { room: raw.room }), event: raw.event, data });
}
