import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { connectClient } from './helpers/clients.js';
import { mint } from './helpers/cli.js';
import { startGateway } from './helpers/gateway.js';
import { needs, toolPath } from './helpers/tools.js';
import { onceWithin } from './helpers/wait.js';

const README = new URL('../README.md', import.meta.url);
const CONTROL_API = new URL('../docs/reference/control-api.md', import.meta.url);
const SECRET = 'readme-test-jwt-secret-0123456789-abc';
const run = promisify(execFile);

/** The lines of `page`'s `lang` block that contains `needle`. */
function block(page: URL, needle: string, lang = 'sh'): string[] {
  const blocks = [...readFileSync(page, 'utf8').matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
  const found = blocks.find((b) => b.includes(needle));
  assert.ok(found, `${page.pathname} has a ${lang} block with ${needle}`);
  return found.split('\n');
}

/**
 * docs/reference/control-api.md's block, run line by line with sh and curl against a gateway (its
 * `localhost:3000` pointed at the gateway), as a reader would paste it. Its revoke lines must
 * revoke something: with fixed timestamps they went stale and answered 200 for nothing.
 */
describe('docs/reference/control-api.md: the example, run as written', { skip: needs('curl') }, () => {
  for (const transport of ['uws', 'node'] as const) {
    it(`answers every command and its revocations refuse the tokens they name (${transport})`, async () => {
      toolPath('curl');
      const lines = block(CONTROL_API, '/v1/revoke');
      const controlKey = /Authorization: Bearer (\S+)'/.exec(lines.join('\n'))?.[1];
      const jti = /"jti":"([^"]+)"/.exec(lines.join('\n'))?.[1];
      assert.ok(controlKey && jti, 'the block names a control key and a jti');
      const gw = await startGateway({ env: { TRANSPORT: transport, JWT_SECRET: SECRET, CONTROL_KEYS: controlKey } });
      try {
        const env = { JWT_SECRET: SECRET };
        const alice = await mint(['--sub', 'alice', '--rooms', 'support:*'], env);
        const bob = await mint(['--sub', 'bob', '--jti', jti, '--ttl', '1h'], env);
        const bobClient = await connectClient(gw.url, { auth: { token: bob } });
        const told = onceWithin<[{ code: string }]>(bobClient.socket, 'herald:disconnect', 'herald:disconnect for the revoked jti');

        // Assignments (K=..., NOW=...) carry over to every command after them, as in one shell.
        const preamble: string[] = [];
        const answers: { line: string; body: Record<string, any> }[] = [];
        for (const line of lines.map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))) {
          if (/^[A-Z]+=/.test(line)) {
            preamble.push(line);
            continue;
          }
          const script = [...preamble, line.replaceAll('localhost:3000', `127.0.0.1:${gw.port}`)].join('\n');
          const { stdout } = await run('sh', ['-c', script], { env: { PATH: process.env.PATH } });
          answers.push({ line, body: JSON.parse(stdout) as Record<string, any> });
        }
        assert.equal(answers.length, 7, 'disconnect, subscribe, unsubscribe, three revokes, users');
        for (const { line, body } of answers) assert.equal(body.error, undefined, `${line}: ${JSON.stringify(body)}`);
        const revokes = answers.filter((a) => a.line.includes('/v1/revoke'));
        assert.equal(revokes.length, 3);
        for (const { line, body } of revokes) {
          assert.ok(body.revoked.keepUntil > Date.now(), `${line} revokes something now: ${JSON.stringify(body.revoked)}`);
        }

        assert.equal((await told)[0].code, 'token_revoked', 'the open connection with that jti is closed');
        for (const [who, token] of [['alice', alice], ['bob', bob]] as const) {
          const refused = await connectClient(gw.url, { auth: { token } }).then(
            (c) => (c.close(), 'connected'),
            (err: { data?: { code: string } }) => err.data?.code,
          );
          assert.equal(refused, 'token_revoked', `${who}'s token`);
        }
      } finally {
        await gw.stop();
      }
    });
  }
});
