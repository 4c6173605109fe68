import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import type { Socket } from 'socket.io-client';
import { connectClient, publish } from './helpers/clients.js';
import { mint } from './helpers/cli.js';
import { startGateway } from './helpers/gateway.js';
import { capturedConsole, codeBlock, docPage, runSnippet, snippetIo } from './helpers/snippets.js';
import { needs, toolPath } from './helpers/tools.js';
import { onceWithin, waitFor } from './helpers/wait.js';

const README = docPage('README.md');
const CONTROL_API = docPage('docs/reference/control-api.md');
const SSE = docPage('docs/reference/sse.md');
const SECRET = 'readme-test-jwt-secret-0123456789-abc';
const run = promisify(execFile);

/**
 * docs/reference/control-api.md's block, run line by line with sh and curl against a gateway (its
 * `localhost:3000` pointed at the gateway), as a reader would paste it. Its revoke lines must
 * revoke something: with fixed timestamps they went stale and answered 200 for nothing.
 */
describe('docs/reference/control-api.md: the example, run as written', { skip: needs('curl') }, () => {
  for (const transport of ['uws', 'node'] as const) {
    it(`answers every command and its revocations refuse the tokens they name (${transport})`, async () => {
      toolPath('curl');
      const lines = codeBlock(CONTROL_API, '/v1/revoke', 'sh').split('\n');
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

/**
 * The `curl -N` event streams of README and docs/reference/sse.md, run with sh as written (their
 * `localhost:3000` pointed at a gateway with the quick start's settings), with a publish while
 * curl holds the stream: each prints the message as the docs show it.
 */
describe('README and sse.md: curl -N follows rooms as Server-Sent Events, run as written', { skip: needs('curl') }, () => {
  for (const transport of ['uws', 'node'] as const) {
    it(`prints the hello, the subscribes and the published message (${transport})`, async () => {
      toolPath('curl');
      const gw = await startGateway({ env: { TRANSPORT: transport } });
      const curls: ChildProcess[] = [];
      try {
        for (const [page, rooms] of [[README, 1], [SSE, 2]] as const) {
          const line = codeBlock(page, 'curl -N', 'sh').trim();
          assert.ok(!line.includes('\n'), 'one line');
          const curl = spawn('sh', ['-c', line.replaceAll('localhost:3000', `127.0.0.1:${gw.port}`)], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'inherit'] });
          curls.push(curl);
          let out = '';
          curl.stdout!.on('data', (c: Buffer) => (out += c.toString()));
          await waitFor('the subscribes', () => out.split('event: herald:subscribed').length - 1 === rooms);
          const res = await publish(gw.url, { room: 'scores:match-42', event: 'score', data: { home: 2, away: 1 } });
          await waitFor('the message', () => out.includes('event: score\n'));
          assert.ok(out.startsWith('retry: 1000\n\nevent: herald:hello\n'), out);
          assert.ok(out.includes(`event: score\ndata: {"data":{"home":2,"away":1},"meta":{"room":"scores:match-42","id":"${res.body.id}","ts":${res.body.ts}}}\n\n`), out);
        }
      } finally {
        for (const c of curls) c.kill('SIGKILL');
        await gw.stop();
      }
    });
  }
});

/**
 * README's first client and first publish, as a newcomer runs them: the client block (the same
 * text as step 2 of the getting-started guide) against a gateway, and the curl block with sh.
 */
describe('README: the first client and publish, run as written', { skip: needs('curl') }, () => {
  for (const transport of ['uws', 'node'] as const) {
    it(`subscribes, and the curl publish reaches it with its meta (${transport})`, async () => {
      toolPath('curl');
      const client = codeBlock(README, "// { ok: true, room: 'scores:match-42' }", 'js');
      assert.equal(client, codeBlock(docPage('docs/guides/getting-started.md'), "// { ok: true, room: 'scores:match-42' }", 'js'), 'the guide shows the same client');
      const curl = codeBlock(README, '"data":{"home":2,"away":1}', 'sh');
      const gw = await startGateway({ env: { TRANSPORT: transport } });
      const sockets: Socket[] = [];
      try {
        const out = capturedConsole();
        runSnippet(client, { io: snippetIo(gw.url, sockets), console: out.console });
        await waitFor('the subscribe ack', () => out.lines.length === 1);
        assert.deepEqual(out.lines[0], [{ ok: true, room: 'scores:match-42' }]);

        const { stdout } = await run('sh', ['-c', curl.replaceAll('localhost:3000', `127.0.0.1:${gw.port}`)], { env: { PATH: process.env.PATH } });
        const answer = JSON.parse(stdout) as { id: string; ts: number; ids: Record<string, string> };
        assert.deepEqual(answer.ids, { 'scores:match-42': answer.id });
        await waitFor('the score', () => out.lines.length === 2);
        assert.deepEqual(out.lines[1], [{ home: 2, away: 1 }, { room: 'scores:match-42', id: answer.id, ts: answer.ts }]);
      } finally {
        for (const s of sockets) s.close();
        await gw.stop();
      }
    });
  }
});
