import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { HeraldError } from '../errors.js';
import { errorReply, replyHeaders, type HttpReply } from './http.js';
import type { RunningTransport, TransportOptions } from './types.js';

/** Serves Socket.IO (default `ws` engine) and herald's HTTP routes on Node's http server. */
export function startNodeTransport(opts: TransportOptions): Promise<RunningTransport> {
  const server = createServer((req, res) => handle(opts, req, res));
  // Attached after our listener: Engine.IO takes /socket.io/ requests and hands the rest to it.
  opts.io.attach(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve({
        kind: 'node',
        port: typeof address === 'object' && address ? address.port : opts.port,
        stopListening() {
          // Stops accepting; io.close() later closes the upgraded connections.
          if (server.listening) server.close();
        },
      });
    });
  });
}

function handle(opts: TransportOptions, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://herald');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  const request = {
    method: (req.method ?? 'GET').toUpperCase(),
    path: url.pathname,
    query: url.searchParams,
    headers,
    remoteAddress: req.socket.remoteAddress ?? '',
  };
  let done = false;
  const send = (reply: HttpReply, closeConnection = false) => {
    if (done || res.destroyed) return;
    done = true;
    for (const [k, v] of replyHeaders(opts.http.replicaId)) res.setHeader(k, v);
    if (closeConnection) res.setHeader('connection', 'close');
    res.writeHead(reply.status);
    res.end(JSON.stringify(reply.body));
  };
  const dispatch = (body: Buffer) => {
    opts.http.handle({ ...request, body }).then(send, () => send(errorReply(new HeraldError('internal'))));
  };
  if (request.method !== 'POST' && request.method !== 'PUT' && request.method !== 'PATCH') {
    req.resume();
    dispatch(Buffer.alloc(0));
    return;
  }
  const limit = opts.http.maxBodyBytes;
  const tooLarge = () => {
    send(errorReply(new HeraldError('payload_too_large')), true);
    req.resume();
  };
  if (Number(headers['content-length'] ?? 0) > limit) {
    tooLarge();
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    if (done) return;
    size += chunk.length;
    if (size > limit) {
      tooLarge();
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (!done) dispatch(Buffer.concat(chunks, size));
  });
  req.on('error', () => {
    done = true;
  });
}
