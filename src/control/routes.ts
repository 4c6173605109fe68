import { HeraldError } from '../errors.js';
import type { Revocations } from '../auth/revocations.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { HttpRequest, Route } from '../http/route.js';
import type { ClusterCommands, Outcome } from './cluster.js';
import { parseDisconnect, parseMembership, parseRevoke, validateUser, type Command } from './commands.js';
import type { ControlAuthorizer, ControlScope } from '../auth/control-keys.js';

export interface ControlRouteDeps {
  commands: ClusterCommands;
  auth: ControlAuthorizer;
  /** Where revocations are kept for every replica's next check (Redis, or memory on a single node). */
  revocations: Revocations;
  revocationTtlSeconds: number;
  clockSkewMs: number;
  metrics: Metrics;
  logger: Logger;
}

/** `replicas` in every answer: how many reported in time, out of how many Redis counted. */
function replicasOf(outcome: Outcome): { answered: number; expected: number } {
  return { answered: outcome.reports.length, expected: Math.max(outcome.expected, outcome.reports.length) };
}

/** Open connections the replicas acted on, and the waiting sessions (connection recovery) the command changed. */
function sum(outcome: Outcome): number {
  return outcome.reports.reduce((n, r) => n + r.count, outcome.waiting);
}

function jsonBody(req: HttpRequest): unknown {
  try {
    return JSON.parse(req.body.toString('utf8'));
  } catch (err) {
    throw new HeraldError('invalid_json', undefined, { cause: err });
  }
}

/**
 * The control API: `POST /v1/disconnect`, `/v1/subscribe`, `/v1/unsubscribe`, `/v1/revoke` and
 * `GET /v1/users/:user`, each acting on every replica's connections. Every answer has
 * `replicas: {answered, expected}`; counts add up the reports of the replicas that answered.
 * One log line per command (what, whom, counts; never a key or a token).
 */
export function controlRoutes(deps: ControlRouteDeps): Route[] {
  const { commands, auth, metrics, logger } = deps;

  async function run(command: Command, fields: Record<string, unknown>): Promise<Outcome> {
    const started = Date.now();
    let outcome: Outcome;
    try {
      outcome = await commands.run(command);
    } catch (err) {
      metrics.controlCommand(command.kind, 'failed');
      logger.warn({ command: command.kind, ...fields, err: (err as Error).message }, 'control command failed');
      throw err;
    }
    const replicas = replicasOf(outcome);
    metrics.controlCommand(command.kind, replicas.answered < replicas.expected ? 'partial' : 'complete');
    logger.info({ command: command.kind, ...fields, connections: sum(outcome) - outcome.waiting, waiting: outcome.waiting, replicas, ms: Date.now() - started }, 'control command');
    return outcome;
  }

  /** A POST route: the caller's key first, then the body, then `handle` with both. */
  const post = (path: string, handle: (body: unknown, scope: ControlScope) => Promise<unknown>): Route => ({
    method: 'POST',
    path,
    async handle(req) {
      const scope = auth.check(req.headers, req.remoteAddress);
      return { status: 200, body: await handle(jsonBody(req), scope) };
    },
  });

  return [
    post('/v1/disconnect', async (body, scope) => {
      const command = parseDisconnect(body);
      scope.assertUnlimited();
      const outcome = await run(command, { ...command.target });
      return { disconnected: sum(outcome), waiting: outcome.waiting, replicas: replicasOf(outcome) };
    }),
    ...(['subscribe', 'unsubscribe'] as const).map((kind) =>
      post(`/v1/${kind}`, async (body, scope) => {
        const command = parseMembership(kind, body);
        scope.assertRoom(command.room);
        const outcome = await run(command, { ...command.target, room: command.room });
        return { [`${kind}d`]: sum(outcome), waiting: outcome.waiting, replicas: replicasOf(outcome) };
      }),
    ),
    post('/v1/revoke', async (body, scope) => {
      const command = parseRevoke(body, Date.now(), deps.revocationTtlSeconds, deps.clockSkewMs);
      scope.assertUnlimited();
      // Kept first: from here on no replica accepts the token, whether or not the command reaches it.
      try {
        await deps.revocations.revoke(command);
      } catch (err) {
        metrics.controlCommand('revoke', 'failed');
        throw new HeraldError('unavailable', 'Redis is unreachable, so the revocation could not be kept; nothing was done. Retry.', { cause: err });
      }
      const target = 'user' in command ? { user: command.user, issuedBefore: command.issuedBefore } : { jti: command.jti };
      const outcome = await run(command, { ...target, keepUntil: command.keepUntil }).catch((err: unknown) => {
        throw new HeraldError('unavailable', 'The revocation is kept: handshakes and refreshes with these tokens are refused. Redis did not say which replicas to tell, so connections holding them may still be open; retry to close them.', { cause: err });
      });
      return { revoked: { ...target, keepUntil: command.keepUntil }, disconnected: sum(outcome), waiting: outcome.waiting, replicas: replicasOf(outcome) };
    }),
    {
      method: 'GET',
      path: '/v1/users/:user',
      async handle(req) {
        auth.check(req.headers, req.remoteAddress).assertUnlimited();
        const user = validateUser(req.params.user);
        const outcome = await run({ kind: 'list', user }, { user });
        const connections = outcome.reports.flatMap((r) => r.connections ?? []).sort((a, b) => a.connectedAt - b.connectedAt || a.client.localeCompare(b.client));
        return { status: 200, body: { user, connections, replicas: replicasOf(outcome) } };
      },
    },
  ];
}
