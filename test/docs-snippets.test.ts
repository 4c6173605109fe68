import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { io as connect, type Socket } from 'socket.io-client';
import { HeraldClient } from '../client/src/index.js';
import { mint } from './helpers/cli.js';
import { publish } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { capturedConsole, codeBlock, docPage, runSnippet, snippetIo } from './helpers/snippets.js';
import { onceWithin, waitFor } from './helpers/wait.js';

const KEY = 'docs-snippets-publish-key-0123456789';
const SECRET = 'docs-snippets-jwt-secret-0123456789-abc';
const GETTING_STARTED = docPage('docs/guides/getting-started.md');
const LIVE_SCORES = docPage('docs/guides/live-scores.md');
const CHAT = docPage('docs/guides/chat-and-presence.md');

/**
 * The guides' client snippets, run as written against real gateways (both transports), with
 * what they leave to the application (`render`, `append`, a socket) supplied by the test. The
 * commands around them were run by hand and their outputs pasted; these check that the code still
 * does what the pasted output shows.
 */
for (const transport of ['uws', 'node'] as const) {
  describe(`the guides' client snippets (${transport})`, () => {
    const gateways: Gateway[] = [];
    const sockets: Socket[] = [];
    const gateway = async (env: Record<string, string>) => {
      const gw = await startGateway({ env: { TRANSPORT: transport, PUBLISH_KEYS: KEY, ...env } });
      gateways.push(gw);
      return gw;
    };
    const send = async (gw: Gateway, room: string, event: string, data: unknown) => {
      const res = await publish(gw.url, { room, event, data }, KEY);
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    /** A socket the test makes for a snippet that starts from one (`socket.on(...)`). */
    const socketTo = (gw: Gateway, reconnection = true) => {
      const socket = connect(gw.url, { forceNew: true, reconnection, reconnectionDelay: 100, reconnectionDelayMax: 300 });
      sockets.push(socket);
      return socket;
    };
    /** Drops a connection as a network failure would; socket.io-client reconnects by itself when allowed. */
    const dropConnection = async (socket: Socket) => {
      const gone = onceWithin(socket, 'disconnect', 'disconnect');
      (socket.io.engine as unknown as { close(): void }).close();
      await gone;
    };

    after(async () => {
      for (const s of sockets) s.close();
      await Promise.all(gateways.map((g) => g.stop()));
    });

    it('getting started: the token client joins the rooms its token allows, and is refused without one', async () => {
      const gw = await gateway({ JWT_SECRET: SECRET });
      const code = codeBlock(GETTING_STARTED, 'process.env.TOKEN', 'js');
      const token = await mint(['--sub', 'alice', '--rooms', 'scores:*', '--ttl', '15m'], { JWT_SECRET: SECRET });

      const alice = capturedConsole();
      runSnippet(code, { io: snippetIo(gw.url, sockets), console: alice.console, process: { env: { TOKEN: token } } });
      await waitFor('both acks', () => alice.lines.length === 2);
      assert.deepEqual(alice.lines[0], [{ ok: true, room: 'scores:match-42' }]);
      assert.equal((alice.lines[1]![0] as { error: { code: string } }).error.code, 'forbidden', 'chat:general is not in the token');
      await send(gw, 'scores:match-42', 'score', { home: 3, away: 1 });
      await waitFor('the score', () => alice.lines.length === 3);
      assert.deepEqual(alice.lines[2]![0], { home: 3, away: 1 });

      const anonymous = capturedConsole();
      runSnippet(code, { io: snippetIo(gw.url, sockets), console: anonymous.console, process: { env: {} } });
      await waitFor('the refusal', () => anonymous.lines.length === 1);
      assert.equal((anonymous.lines[0]![0] as { code: string }).code, 'unauthorized');
    });

    it('live scores: the score page renders the current score first, every update, and the newest after a reconnect', async () => {
      const gw = await gateway({ HISTORY_ROOMS: 'scores:* last=1, commentary:* size=500' });
      const room = 'scores:match-42';
      const score = (home: number) => send(gw, room, 'score', { home, away: 1 });
      await score(0);
      await score(1);
      const rendered: { home: number }[] = [];
      const socket = socketTo(gw);
      runSnippet(codeBlock(LIVE_SCORES, "{ room, last: 1 }", 'js'), { socket, render: (d: { home: number }) => rendered.push(d) });
      await waitFor('the current score', () => rendered.length === 1);
      assert.deepEqual(rendered, [{ home: 1, away: 1 }]);
      await score(2);
      await waitFor('the update', () => rendered.length === 2);
      assert.deepEqual(rendered, [{ home: 1, away: 1 }, { home: 2, away: 1 }]);

      await dropConnection(socket);
      await score(3);
      await waitFor('reconnected, showing the newest score', () => socket.connected && rendered.at(-1)?.home === 3);
      const homes = rendered.map((r) => r.home);
      assert.deepEqual(homes, [...homes].sort((a, b) => a - b), `never an older score after a newer one: ${homes.join(',')}`);
    });

    it('live scores: the delta page renders every score whole while the wire carries deltas', async () => {
      const gw = await gateway({ HISTORY_ROOMS: 'scores:* last=1 delta, commentary:* size=500' });
      const room = 'scores:match-42';
      const score = (home: number, away = 1) => send(gw, room, 'score', { home, away });
      await score(0);
      await score(1);
      const rendered: unknown[] = [];
      const socket = socketTo(gw);
      const wire: { base?: string }[] = [];
      socket.onAny((event: string, _data: unknown, meta: { base?: string }) => event === 'score' && wire.push(meta));
      const logged = capturedConsole();
      runSnippet(codeBlock(LIVE_SCORES, "delta: 'fossil'", 'js'), { socket, HeraldClient, console: logged.console, render: (d: unknown) => rendered.push(d) });
      await waitFor('the current score', () => rendered.length === 1);
      await score(2);
      await waitFor('the update', () => rendered.length === 2);
      await score(3);
      await score(3, 2);
      await waitFor('all four', () => rendered.length === 4);
      assert.deepEqual(rendered, [{ home: 1, away: 1 }, { home: 2, away: 1 }, { home: 3, away: 1 }, { home: 3, away: 2 }]);
      // Scores this small go whole: a delta would not be smaller.
      assert.deepEqual(wire.map((m) => m.base !== undefined), [false, false, false, false], JSON.stringify(wire));
      // A real score object goes as deltas after the first (a delta from the small one would not be smaller).
      const big = (minute: number) => ({ home: 3, away: 2, minute, venue: 'Riverside Stadium, North Stand entrance C', referee: 'A. Example', competition: 'Premier League', teams: ['Northfield Rovers', 'Southgate Albion'] });
      for (let minute = 1; minute <= 3; minute++) await send(gw, room, 'score', big(minute));
      await waitFor('the big ones', () => rendered.length === 7);
      assert.deepEqual(rendered.slice(4), [big(1), big(2), big(3)]);
      assert.deepEqual(wire.slice(4).map((m) => m.base !== undefined), [false, true, true]);
    });

    it('live scores: the feed gets the newest 20, then live, then everything it missed, once each', async () => {
      const gw = await gateway({ HISTORY_ROOMS: 'scores:* last=1, commentary:* size=500' });
      const room = 'commentary:match-42';
      const line = (n: number) => send(gw, room, 'commentary', `minute ${n}`);
      for (let n = 1; n <= 25; n++) await line(n);
      const appended: string[] = [];
      let reloads = 0;
      // No automatic reconnect: the test publishes while it is away, then reconnects it.
      const socket = socketTo(gw, false);
      runSnippet(codeBlock(LIVE_SCORES, '{ room, last: 20 }', 'js'), {
        socket,
        room,
        append: (d: string) => appended.push(d),
        reloadStateFromBackend: async () => reloads++,
      });
      await waitFor('the newest 20', () => appended.length === 20);
      await line(26);
      await waitFor('live', () => appended.length === 21);
      await dropConnection(socket);
      for (let n = 27; n <= 30; n++) await line(n);
      socket.connect();
      await waitFor('what it missed', () => appended.length >= 25);
      await line(31);
      await waitFor('live again', () => appended.includes('minute 31'));
      assert.deepEqual(appended, Array.from({ length: 26 }, (_, i) => `minute ${i + 6}`), 'minutes 6 to 31, once each, in order');
      assert.equal(reloads, 0, 'nothing was lost');
    });

    it('chat and presence: presence, join and leave, a client publish, the user room', async () => {
      const gw = await gateway({ JWT_SECRET: SECRET, PRESENCE_ROOMS: 'chat:* events' });
      const code = codeBlock(CHAT, "emitWithAck('publish'", 'js');
      const token = (sub: string) => mint(['--sub', sub, '--rooms', 'chat:*', '--publish', 'chat:*'], { JWT_SECRET: SECRET });
      const alice = capturedConsole();
      const a = runSnippet(code, { io: snippetIo(gw.url, sockets), console: alice.console, token: await token('alice') }, ['socket', 'say']);
      await waitFor('alice sees who is here', () => alice.lines.length === 1);
      assert.deepEqual(alice.lines[0], [{ ok: true, room: 'chat:team-7', connections: 1, users: ['alice'] }]);

      const bob = capturedConsole();
      const b = runSnippet(code, { io: snippetIo(gw.url, sockets), console: bob.console, token: await token('bob') }, ['socket', 'say']);
      await waitFor('bob sees both', () => bob.lines.length === 1);
      assert.deepEqual(bob.lines[0], [{ ok: true, room: 'chat:team-7', connections: 2, users: ['alice', 'bob'] }]);
      await waitFor('alice hears bob join', () => alice.lines.some((l) => l[0] === 'bob joined'));

      const ack = (await b.say('hi alice')) as { ok: boolean; ids: Record<string, string> };
      assert.equal(ack.ok, true);
      assert.ok(ack.ids['chat:team-7']);
      await send(gw, 'user:alice', 'message', { text: 'only for alice' });
      await waitFor('alice gets both', () => alice.lines.some((l) => l[0] === 'user:alice: only for alice'));
      (b.socket as Socket).close();
      await waitFor('alice hears bob leave', () => alice.lines.some((l) => l[0] === 'bob left'));
      assert.deepEqual(
        alice.lines.slice(1).map((l) => l[0]),
        ['bob joined', 'chat:team-7: hi alice', 'user:alice: only for alice', 'bob left'],
      );
      assert.ok(!bob.lines.some((l) => l[0] === 'user:alice: only for alice'), "alice's room is hers alone");
      (a.socket as Socket).close();
    });
  });
}
