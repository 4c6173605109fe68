/**
 * One Redis core's pub/sub capacity on this machine: publishers pipelining PUBLISH to one channel
 * with `k` subscribers, as fast as Redis answers. Clients are raw sockets that count bytes (no
 * parsing), so they cost little beside Redis. Reported per run: messages in (PUBLISH) and out
 * (deliveries to subscribers) per second, and Redis's own CPU share; divided by that share, what
 * one fully used core would carry. A least-squares fit over the runs gives Redis's CPU cost per
 * message in and per delivery out.
 */
import { connect, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { cpuSeconds, startRedis } from './cluster.js';

export interface PubSubRun {
  subscribers: number;
  inPerSecond: number;
  outPerSecond: number;
  redisCpuShare: number;
}

export interface PubSubCapacity {
  payloadBytes: number;
  runs: PubSubRun[];
  /** Redis CPU microseconds per PUBLISH received and per message delivered to a subscriber. */
  usPerMessageIn: number;
  usPerDeliveryOut: number;
}

const CHANNEL = 'bench:capacity';
/** PUBLISH commands a publisher keeps unanswered. */
const WINDOW = 256;

const resp = (...args: string[]) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;

async function open(port: number): Promise<Socket> {
  const s = connect(port, '127.0.0.1');
  s.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  return s;
}

async function run(port: number, pid: number, subscribers: number, publishers: number, seconds: number, payload: string): Promise<PubSubRun> {
  const message = Buffer.byteLength(resp('message', CHANNEL, payload));
  const subs: Socket[] = [];
  let outBytes = 0;
  for (let i = 0; i < subscribers; i++) {
    const s = await open(port);
    let confirmed = false;
    await new Promise<void>((resolve) => {
      s.on('data', (d: Buffer) => {
        if (!confirmed) {
          confirmed = true;
          resolve();
          return;
        }
        outBytes += d.length;
      });
      s.write(resp('SUBSCRIBE', CHANNEL));
    });
    subs.push(s);
  }
  const command = Buffer.from(resp('PUBLISH', CHANNEL, payload));
  const batch = Buffer.concat(Array.from({ length: WINDOW / 2 }, () => command));
  let answered = 0;
  let running = true;
  const pubs = await Promise.all(Array.from({ length: publishers }, () => open(port)));
  for (const p of pubs) {
    let outstanding = 0;
    const top = () => {
      while (running && outstanding < WINDOW) {
        p.write(batch);
        outstanding += WINDOW / 2;
      }
    };
    p.on('data', (d: Buffer) => {
      // Every reply is `:<n>\r\n`: one newline each.
      let n = 0;
      for (let i = 0; i < d.length; i++) if (d[i] === 0x0a) n++;
      answered += n;
      outstanding -= n;
      top();
    });
    top();
  }
  // Warm up, then measure a window.
  await delay(1000);
  const a = { at: Date.now(), cpu: cpuSeconds(pid), answered, outBytes };
  await delay(seconds * 1000);
  const b = { at: Date.now(), cpu: cpuSeconds(pid), answered, outBytes };
  running = false;
  for (const s of [...pubs, ...subs]) s.destroy();
  const wall = (b.at - a.at) / 1000;
  return { subscribers, inPerSecond: (b.answered - a.answered) / wall, outPerSecond: (b.outBytes - a.outBytes) / message / wall, redisCpuShare: (b.cpu - a.cpu) / wall };
}

/** Least squares for cpu = in·x + out·y over the runs (per second of wall time). */
function fit(runs: PubSubRun[]): { x: number; y: number } {
  let aa = 0, ab = 0, bb = 0, ac = 0, bc = 0;
  for (const r of runs) {
    aa += r.inPerSecond ** 2;
    ab += r.inPerSecond * r.outPerSecond;
    bb += r.outPerSecond ** 2;
    ac += r.inPerSecond * r.redisCpuShare;
    bc += r.outPerSecond * r.redisCpuShare;
  }
  const det = aa * bb - ab * ab;
  return { x: (ac * bb - bc * ab) / det, y: (aa * bc - ab * ac) / det };
}

export async function measureRedisPubSub(opts: { subscribers?: number[]; seconds?: number; payloadBytes?: number } = {}): Promise<PubSubCapacity> {
  const payloadBytes = opts.payloadBytes ?? 200;
  const payload = 'x'.repeat(payloadBytes);
  const redis = await startRedis();
  try {
    const port = Number(new URL(redis.url).port);
    const runs: PubSubRun[] = [];
    for (const k of opts.subscribers ?? [1, 8, 32]) runs.push(await run(port, redis.pid, k, 2, opts.seconds ?? 5, payload));
    const { x, y } = fit(runs);
    return { payloadBytes, runs, usPerMessageIn: x * 1e6, usPerDeliveryOut: y * 1e6 };
  } finally {
    await redis.stop();
  }
}
