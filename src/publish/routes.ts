import { HeraldError } from '../errors.js';
import type { Route } from '../transport/http.js';
import type { PublishAuthorizer } from './keys.js';
import { parsePublishRequest, type Publisher } from './service.js';

/** `POST /v1/publish`: `{room, event, data}` or `{rooms, event, data}` → 200 `{id}`. */
export function publishRoutes(publisher: Publisher, auth: PublishAuthorizer): Route[] {
  return [
    {
      method: 'POST',
      path: '/v1/publish',
      async handle(req) {
        const scope = auth.check(req.headers, req.remoteAddress);
        let body: unknown;
        try {
          body = JSON.parse(req.body.toString('utf8'));
        } catch (err) {
          throw new HeraldError('invalid_json', undefined, { cause: err });
        }
        const request = parsePublishRequest(body);
        scope.assertRooms(request.rooms);
        const result = await publisher.publish(request, 'http');
        return { status: 200, body: result };
      },
    },
  ];
}
