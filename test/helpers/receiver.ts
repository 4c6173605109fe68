import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The receiver check of docs/reference/backend-events.md, as a backend would write it: the HMAC of "<t>.<raw body>" under the
 * secret, compared in constant time, and `t` no older than five minutes.
 */
export function verified(secret: string, header: string | undefined, raw: string): boolean {
  const { t, v1 } = Object.fromEntries((header ?? '').split(',').map((p) => p.split('=')));
  if (!t || !v1 || Math.abs(Date.now() / 1000 - Number(t)) > 300) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${raw}`).digest();
  const given = Buffer.from(v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** One request the receiver got, with what it answered. */
export interface Hit {
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly raw: string;
  readonly body: any;
  /** The status answered; undefined while it is held (`hang`). */
  status: number | undefined;
  /** For a `stream` reply: bytes of the body written, and whether all of them were (set once it ended either way). */
  streamed?: { written: number; complete: boolean };
}

/**
 * What the test's handler answers: a status and JSON body, raw text, `hang` (never answer), or
 * `stream`: `body` as JSON with a string of `stream.bytes` bytes added as `stream.field`, written
 * chunk by chunk as fast as the reader takes them (for answers too large to hold).
 */
export type Reply = { status: number; body?: unknown; text?: string; stream?: { field: string; bytes: number } } | 'hang';

const STREAM_CHUNK = Buffer.alloc(64 * 1024, 'x');

/** Writes `{...body, [field]: "xxx…"}` with `bytes` x's, minding backpressure; records how far it got in `hit.streamed`. */
function streamReply(res: ServerResponse, hit: Hit, body: unknown, stream: { field: string; bytes: number }): void {
  const head = JSON.stringify({ ...(body as object), [stream.field]: '' }).slice(0, -2);
  res.writeHead(hit.status!, { 'content-type': 'application/json' });
  let written = 0;
  const done = (complete: boolean) => {
    hit.streamed ??= { written, complete };
  };
  res.on('close', () => done(false));
  res.write(head);
  const pump = () => {
    while (written < stream.bytes) {
      const n = Math.min(STREAM_CHUNK.length, stream.bytes - written);
      written += n;
      if (!res.write(n === STREAM_CHUNK.length ? STREAM_CHUNK : STREAM_CHUNK.subarray(0, n))) {
        res.once('drain', pump);
        return;
      }
    }
    res.end('"}', () => done(true));
  };
  pump();
}

/**
 * A real node:http backend on a free port that checks the signature of every request it gets:
 * `unsigned` lists the ones that failed (tests assert it stays empty). Answers 200 `{}` unless
 * `handler` says otherwise.
 */
export interface Receiver {
  readonly url: string;
  readonly hits: Hit[];
  readonly unsigned: Hit[];
  handler: (hit: Hit) => Reply | undefined;
  close(): Promise<void>;
}

export async function startReceiver(secret: string): Promise<Receiver> {
  const hits: Hit[] = [];
  const unsigned: Hit[] = [];
  const held: ServerResponse[] = [];
  const receiver: Receiver = {
    url: '',
    hits,
    unsigned,
    handler: () => undefined,
    async close() {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch {
        body = undefined;
      }
      const hit: Hit = { path: req.url ?? '', headers: req.headers, raw, body, status: undefined };
      hits.push(hit);
      if (!verified(secret, req.headers['herald-signature'] as string | undefined, raw)) unsigned.push(hit);
      const reply = receiver.handler(hit) ?? { status: 200, body: {} };
      if (reply === 'hang') {
        held.push(res);
        return;
      }
      hit.status = reply.status;
      if (reply.stream) {
        streamReply(res, hit, reply.body ?? {}, reply.stream);
        return;
      }
      res.writeHead(reply.status, { 'content-type': reply.text === undefined ? 'application/json' : 'text/plain' });
      res.end(reply.text ?? JSON.stringify(reply.body ?? {}));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (receiver as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return receiver;
}
