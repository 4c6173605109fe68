// A server that costs almost nothing per frame, for measuring what the harness's client alone can
// take (bench/client-capacity.ts): it speaks just enough Engine.IO/Socket.IO for the harness worker
// to connect and subscribe, then writes prebuilt event frames to every connection, 64 KiB per
// write (BLAST_WRITE_BYTES), as fast as each socket drains. Loopback only; stops after
// BLAST_SECONDS (default 30). PORT from the environment.
const { createServer } = require('node:net');
const { createHash } = require('node:crypto');

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const text = (s) => {
  const p = Buffer.from(s);
  const head = p.length < 126 ? Buffer.from([0x81, p.length]) : Buffer.from([0x81, 126, p.length >> 8, p.length & 0xff]);
  return Buffer.concat([head, p]);
};
// One write's worth of the frames herald sends for a small published message.
const frame = text(`42["load",{"seq":1,"sent":${Date.now()}},{"room":"load:cap","id":"m1","ts":${Date.now()}}]`);
const FRAMES_PER_CHUNK = Math.max(1, Math.floor(Number(process.env.BLAST_WRITE_BYTES ?? 65536) / frame.length));
const CHUNK = Buffer.concat(Array.from({ length: FRAMES_PER_CHUNK }, () => frame));
let started = false;

function unmaskAll(buf) {
  // Client frames are small and masked: [b0, 0x80|len, mask×4, payload].
  const out = [];
  let off = 0;
  while (buf.length - off >= 6) {
    const len = buf[off + 1] & 0x7f;
    if (len >= 126 || buf.length - off < 6 + len) break;
    const mask = buf.subarray(off + 2, off + 6);
    const p = Buffer.alloc(len);
    for (let i = 0; i < len; i++) p[i] = buf[off + 6 + i] ^ mask[i & 3];
    out.push(p.toString());
    off += 6 + len;
  }
  return { frames: out, rest: buf.subarray(off) };
}

const sockets = new Set();
const server = createServer((s) => {
  sockets.add(s);
  s.on('error', () => {});
  s.on('close', () => sockets.delete(s));
  let buf = Buffer.alloc(0);
  let upgraded = false;
  s.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (!upgraded) {
      const at = buf.indexOf('\r\n\r\n');
      if (at < 0) return;
      const key = /sec-websocket-key:\s*(\S+)/i.exec(buf.toString('latin1', 0, at))[1];
      const accept = createHash('sha1').update(key + GUID).digest('base64');
      s.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      s.write(text('0{"sid":"b","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'));
      buf = buf.subarray(at + 4);
      upgraded = true;
    }
    const { frames, rest } = unmaskAll(buf);
    buf = rest;
    for (const f of frames) {
      if (f.startsWith('40')) s.write(text('40{"sid":"b"}'));
      const m = /^42(\d+)\["subscribe"/.exec(f);
      if (m) {
        s.write(text(`43${m[1]}[{"ok":true}]`));
        s.subscribed = true;
      }
    }
  });
});

/** Writes chunks to a socket until its buffer is full, then again on 'drain'. */
function pump(s) {
  while (!s.destroyed && s.write(CHUNK)) s.frames = (s.frames ?? 0) + FRAMES_PER_CHUNK;
  if (!s.destroyed) s.frames = (s.frames ?? 0) + FRAMES_PER_CHUNK;
}

process.on('message', () => {});
process.stdin.on?.('data', () => {});
// SIGUSR2: start blasting every subscribed socket.
process.on('SIGUSR2', () => {
  if (started) return;
  started = true;
  for (const s of sockets) if (s.subscribed) {
    s.on('drain', () => pump(s));
    pump(s);
  }
});
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log(`listening ${process.env.PORT}`));
setTimeout(() => process.exit(0), Number(process.env.BLAST_SECONDS ?? 30) * 1000).unref();
process.on('SIGTERM', () => process.exit(0));
