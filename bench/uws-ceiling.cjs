// The ceiling on this machine: uWebSockets.js native pub/sub in one process, speaking just enough
// Engine.IO/Socket.IO for the harness (open, connect, subscribe with ack, pong) and publishing with
// app.publish. No Redis, no Socket.IO, no auth, no history: it measures the transport alone.
// Used by bench/run.ts and, as the ceiling beside herald's replicas at 100,000 fans, by
// bench/scale (the fans' CONNECT carries a token, which is ignored). Every connection gets
// Engine.IO's ping every 25 s, as herald's do, through one topic. GET /readyz says how many
// connections it holds, as herald's does (bench/scale's kill -9 picks the fullest). PORT from the
// environment.
const uws = require(`uWebSockets.js/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);

const app = uws.App();
/** The topic every connection is in, for Engine.IO's pings (not a room name a client can ask for: rooms come from `subscribe`). */
const PING = '\u0000ping';
setInterval(() => app.publish(PING, '2'), 25_000).unref();
let sid = 0;
let connections = 0;
app.ws('/socket.io/*', {
  maxPayloadLength: 64 * 1024,
  maxBackpressure: 1024 * 1024,
  sendPingsAutomatically: false,
  open: (ws) => {
    connections++;
    ws.subscribe(PING);
    ws.send(`0{"sid":"c${++sid}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`);
  },
  message: (ws, message) => {
    const frame = Buffer.from(message).toString();
    if (frame.startsWith('40')) return void ws.send(`40{"sid":"s${sid}"}`);
    const m = /^42(\d+)\["subscribe",(.*)\]$/.exec(frame);
    if (m) {
      const arg = JSON.parse(m[2]);
      const room = typeof arg === 'string' ? arg : arg.room;
      ws.subscribe(room);
      ws.send(`43${m[1]}[{"ok":true,"room":${JSON.stringify(room)}}]`);
    }
  },
  close: () => {
    connections--;
  },
});
app.get('/readyz', (res) => {
  res.cork(() => res.writeHeader('content-type', 'application/json').end(`{"connections":${connections}}`));
});
let seq = 0;
app.post('/v1/publish', (res) => {
  let body = '';
  res.onAborted(() => {});
  res.onData((chunk, last) => {
    body += Buffer.from(chunk).toString();
    if (!last) return;
    const { room, event, data } = JSON.parse(body);
    const id = `m${++seq}`;
    const frame = `42${JSON.stringify([event, data, { room, id, ts: Date.now() }])}`;
    const answer = () => res.cork(() => res.writeHeader('content-type', 'application/json').end(`{"id":"${id}"}`));
    // CEILING_DEFER=1 publishes from a promise continuation, as herald does (an experiment, see
    // BENCHMARKS.md); by default it publishes inside uWS's own callback.
    if (process.env.CEILING_DEFER === '1') {
      Promise.resolve().then(() => {
        app.publish(room, frame);
        answer();
      });
    } else {
      app.publish(room, frame);
      answer();
    }
  });
});
// 1: LIBUS_LISTEN_EXCLUSIVE_PORT, as herald listens (src/transport/uws-listen.ts): no port shared with another process.
app.listen('127.0.0.1', Number(process.env.PORT), 1, (token) => {
  if (!token) process.exit(1);
  console.log(`listening ${process.env.PORT}`);
});
process.on('SIGTERM', () => process.exit(0));
