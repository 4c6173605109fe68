/**
 * `node --import tsx bench/sse.ts`: Server-Sent Events beside Socket.IO on one herald replica
 * (uWS, no Redis: `herald-uws-1`), each figure on a fresh process:
 * - RSS per idle connection: COUNT (default 10,000) idle streams in one room, against as many
 *   Socket.IO connections (the harness's `connections` scenario);
 * - server CPU per delivery: 1,000 subscribers of one room, RATE (default 100) messages/s for
 *   SECONDS (default 10): streams against Socket.IO clients (the harness's `fanout-latency`).
 * ONLY=sse-cpu runs the streams' CPU figure alone. The stream readers are raw sockets in this process (pinned to the client CPU, as the harness's
 * workers are); they count the messages they receive (`"meta":` appears only in published ones).
 */
import { connect, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import * as scenarios from '../loadtest/harness/scenarios.js';
import { publishAtRate } from '../loadtest/harness/publisher.js';
import { Workers } from '../loadtest/harness/workers.js';
import { CLIENT_CPU, cpuUsEach, heraldStack, pinToClientCpu, rssBytes, withCpu, type Stack } from './stacks.js';

pinToClientCpu();
const COUNT = Number(process.env.COUNT ?? 10_000);
const RATE = Number(process.env.RATE ?? 100);
const SECONDS = Number(process.env.SECONDS ?? 10);
const SUBSCRIBERS = 1000;
const SSE_ENV = { REDIS_URL: '', SSE_STREAMS_PER_IP: '1000000', SSE_HEARTBEAT_SECONDS: '60' };

interface Reader {
  socket: Socket;
  subscribed: boolean;
  messages: number;
}

/** Opens `n` streams of `room`, `concurrency` at a time; resolves once every one is subscribed. */
async function openStreams(url: string, room: string, n: number): Promise<Reader[]> {
  const { hostname, port } = new URL(url);
  const readers: Reader[] = [];
  const openOne = () =>
    new Promise<Reader>((resolve, reject) => {
      const socket = connect(Number(port), hostname);
      const r: Reader = { socket, subscribed: false, messages: 0 };
      let tail = '';
      socket.setEncoding('utf8');
      socket.once('error', reject);
      socket.once('connect', () => socket.write(`GET /v1/stream?room=${room} HTTP/1.1\r\nHost: herald\r\nAccept: text/event-stream\r\n\r\n`));
      socket.on('data', (chunk: string) => {
        const text = tail + chunk;
        if (!r.subscribed && text.includes('herald:subscribed')) {
          r.subscribed = true;
          resolve(r);
        }
        r.messages += text.split('"meta":').length - 1 - (tail.split('"meta":').length - 1);
        tail = text.slice(-8);
      });
    });
  for (let i = 0; i < n; i += 200) readers.push(...(await Promise.all(Array.from({ length: Math.min(200, n - i) }, openOne))));
  return readers;
}

const closeAll = (readers: Reader[]) => readers.forEach((r) => r.socket.destroy());
const fresh = () => heraldStack('herald-uws-1', 'uws', 1, SSE_ENV);
async function withStack<T>(fn: (stack: Stack) => Promise<T>): Promise<T> {
  const stack = await fresh();
  try {
    return await fn(stack);
  } finally {
    await stack.stop();
  }
}

const workers = await Workers.start(2, { cpus: CLIENT_CPU });
const only = process.env.ONLY;
try {
  if (only === 'sse-cpu') {
    const r = await withStack(async (stack) => {
      const room = 'load:sse-fanout';
      const readers = await openStreams(stack.urls[0]!, room, SUBSCRIBERS);
      const { result, cpu } = await withCpu(stack, async () => {
        await publishAtRate({ urls: stack.urls }, [room], RATE, SECONDS);
        await delay(1000);
        return readers.reduce((a, r) => a + r.messages, 0);
      });
      closeAll(readers);
      return cpuUsEach(cpu, result);
    });
    console.log(`SSE server CPU per delivery ${r.toFixed(2)} µs`);
    process.exit(0);
  }
  const sseIdle = await withStack(async (stack) => {
    await delay(1000);
    const before = rssBytes(stack.servers[0]!.pid);
    const readers = await openStreams(stack.urls[0]!, 'load:idle', COUNT);
    await delay(2000);
    const after = rssBytes(stack.servers[0]!.pid);
    closeAll(readers);
    return Math.round((after - before) / COUNT);
  });
  const ioIdle = await withStack(async (stack) => {
    await delay(1000);
    const r = await scenarios.connections(workers, { urls: stack.urls, rss: async () => rssBytes(stack.servers[0]!.pid) }, { count: COUNT, holdSeconds: 2 });
    return r.bytesPerConnection!;
  });
  const sseCpu = await withStack(async (stack) => {
    const room = 'load:sse-fanout';
    const readers = await openStreams(stack.urls[0]!, room, SUBSCRIBERS);
    const { result, cpu } = await withCpu(stack, async () => {
      const pub = await publishAtRate({ urls: stack.urls }, [room], RATE, SECONDS);
      const expected = (pub.accepted[room] ?? 0) * SUBSCRIBERS;
      const deadline = Date.now() + 30_000;
      while (readers.reduce((a, r) => a + r.messages, 0) < expected && Date.now() < deadline) await delay(50);
      return { delivered: readers.reduce((a, r) => a + r.messages, 0), expected };
    });
    closeAll(readers);
    return { ...result, usEach: cpuUsEach(cpu, result.delivered) };
  });
  const ioCpu = await withStack(async (stack) => {
    const { result, cpu } = await withCpu(stack, () => scenarios.fanoutLatency(workers, { urls: stack.urls }, { subscribers: SUBSCRIBERS, rate: RATE, seconds: SECONDS }));
    return { delivered: result.delivered, expected: result.expected, usEach: cpuUsEach(cpu, result.delivered) };
  });
  console.log(`RSS per idle connection (${COUNT}): SSE ${(sseIdle / 1024).toFixed(1)} KB, Socket.IO ${(ioIdle / 1024).toFixed(1)} KB`);
  console.log(`server CPU per delivery (${SUBSCRIBERS} subscribers, ${RATE} msg/s, ${SECONDS} s): SSE ${sseCpu.usEach.toFixed(2)} µs (${sseCpu.delivered} of ${sseCpu.expected}), Socket.IO ${ioCpu.usEach.toFixed(2)} µs (${ioCpu.delivered} of ${ioCpu.expected}); ratio ${(sseCpu.usEach / ioCpu.usEach).toFixed(2)}`);
} finally {
  await workers.stop();
}
