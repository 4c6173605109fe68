import { HeraldError } from '../errors.js';
import type { Route } from '../http/route.js';
import type { PublishAuthorizer } from '../auth/publish-keys.js';
import { parsePublishRequest, type Publisher } from './service.js';

/** The header a publisher sets to retry without duplicates; sent to the history backend as a dedupe key. */
export const IDEMPOTENCY_HEADER = 'idempotency-key';
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/**
 * `POST /v1/publish`: `{room, event, data}` or `{rooms, event, data}` → 200 `{id, ts, ids}`.
 * With `Idempotency-Key: <key>` (1-128 visible ASCII characters), a history room that was already
 * published to under that key (within its history TTL, by any replica) is not published again:
 * the answer carries the first publish's id there and `duplicate: true`. It is kept as `key:<key>`,
 * beside the ingest's `<stream>/<id>` and `amqp/<id>`.
 */
export function publishRoutes(publisher: Publisher, auth: PublishAuthorizer): Route[] {
  return [
    {
      method: 'POST',
      path: '/v1/publish',
      async handle(req) {
        const scope = auth.check(req.headers, req.remoteAddress);
        const key = req.headers[IDEMPOTENCY_HEADER];
        if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
          throw new HeraldError('bad_request', 'Idempotency-Key must be 1-128 visible ASCII characters (a UUID, for instance).');
        }
        let body: unknown;
        try {
          body = JSON.parse(req.body.toString('utf8'));
        } catch (err) {
          throw new HeraldError('invalid_json', undefined, { cause: err });
        }
        const request = parsePublishRequest(body);
        scope.assertRooms(request.rooms);
        const result = await publisher.publish(request, 'http', key === undefined ? undefined : `key:${key}`);
        return { status: 200, body: result };
      },
    },
  ];
}
