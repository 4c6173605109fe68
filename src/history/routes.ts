import { HeraldError } from '../errors.js';
import { authorizedRoom, type PublishAuthorizer } from '../auth/publish-keys.js';
import type { HistoryRooms } from './rooms.js';
import type { Route } from '../http/route.js';
import { isStreamId } from '../protocol/ids.js';

export const HISTORY_PAGE_DEFAULT = 100;
export const HISTORY_PAGE_MAX = 1000;

/**
 * `GET /v1/rooms/:room/history?since=<id>&limit=<n>`, for backends (publish keys): entries after
 * `since`, oldest first, `recovered` as for clients, and `next` (the `since` of the next page) when
 * the page is full.
 */
export function historyRoutes(history: HistoryRooms | undefined, auth: PublishAuthorizer): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/rooms/:room/history',
      async handle(req) {
        const room = authorizedRoom(auth, req);
        if (!history?.policyFor(room)) throw new HeraldError('not_found', `Room "${room}" keeps no history (see HISTORY_ROOMS).`);
        const since = req.query.get('since') ?? undefined;
        if (since !== undefined && !isStreamId(since)) throw new HeraldError('invalid_since');
        const rawLimit = req.query.get('limit');
        const limit = rawLimit === null ? HISTORY_PAGE_DEFAULT : Number(rawLimit);
        if (!Number.isInteger(limit) || limit < 1 || limit > HISTORY_PAGE_MAX) {
          throw new HeraldError('bad_request', `"limit" must be a whole number from 1 to ${HISTORY_PAGE_MAX}.`);
        }
        let page;
        try {
          page = await history.backend.read(room, since, limit);
        } catch (err) {
          throw new HeraldError('unavailable', 'History is unreachable (Redis is down). Retry.', { cause: err });
        }
        const entries = page.entries.map(({ id, event, data, ts }) => ({ id, event, data, ts }));
        const next = entries.length === limit ? entries.at(-1)!.id : undefined;
        return { status: 200, body: { room, recovered: page.recovered, entries, ...(next ? { next } : {}) } };
      },
    },
  ];
}
