import { authorizedRoom, type PublishAuthorizer } from '../auth/publish-keys.js';
import { PRESENCE_PAGE_DEFAULT, type PresenceRooms } from './rooms.js';
import { HeraldError } from '../errors.js';
import type { Route } from '../http/route.js';

/** `GET /v1/rooms/:room/presence?cursor=<user>&limit=<n>` for backends (publish keys). */
export function presenceRoutes(presence: PresenceRooms | undefined, auth: PublishAuthorizer): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/rooms/:room/presence',
      async handle(req) {
        const room = authorizedRoom(auth, req);
        if (!presence) throw new HeraldError('not_found', `Room "${room}" has no presence (see PRESENCE_ROOMS).`);
        const rawLimit = req.query.get('limit');
        const page = await presence.page(room, req.query.get('cursor') ?? undefined, rawLimit === null ? PRESENCE_PAGE_DEFAULT : Number(rawLimit));
        return { status: 200, body: page };
      },
    },
  ];
}
