// The reference "what users deploy today": Socket.IO 4.8 with @socket.io/redis-adapter over
// ioredis on Node's http server and the default `ws` engine, as the Socket.IO documentation shows
// it, plus the minimum glue a real app adds: a `subscribe` event and an HTTP publish endpoint.
// Used only by bench/run.ts. PORT, REDIS_URL from the environment. CONNECTION_STATE_RECOVERY=1
// (the jitter scenario) turns on Socket.IO's connectionStateRecovery, as a user would try it, and
// joins the room a client names in its handshake (`auth.room`) whenever the session was not
// recovered.
const { createServer } = require('node:http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { Redis } = require('ioredis');
const { randomUUID } = require('node:crypto');

const pubClient = new Redis(process.env.REDIS_URL);
const subClient = pubClient.duplicate();
pubClient.on('error', () => {});
subClient.on('error', () => {});

const httpServer = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/v1/publish') {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const { room, event, data } = JSON.parse(body);
      const id = randomUUID();
      io.to(room).emit(event, data, { room, id, ts: Date.now() });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id }));
    });
    return;
  }
  res.writeHead(404).end();
});

const recovery = process.env.CONNECTION_STATE_RECOVERY === '1';
const io = new Server(httpServer, {
  adapter: createAdapter(pubClient, subClient),
  serveClient: false,
  ...(recovery ? { connectionStateRecovery: { maxDisconnectionDuration: 120_000 } } : {}),
});
io.on('connection', (socket) => {
  const room = socket.handshake.auth?.room;
  if (recovery && !socket.recovered && typeof room === 'string') socket.join(room);
  socket.on('subscribe', (arg, ack) => {
    const room = typeof arg === 'string' ? arg : arg.room;
    socket.join(room);
    if (typeof ack === 'function') ack({ ok: true, room });
  });
});

httpServer.listen(Number(process.env.PORT), '127.0.0.1', () => console.log(`listening ${httpServer.address().port}`));
process.on('SIGTERM', () => process.exit(0));
