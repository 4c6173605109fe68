/**
 * `node --import tsx bench/memory.ts [stack ...]`: where a stack's memory per idle connection goes.
 * For each stack (names as in bench/probe.ts; default herald-uws-1 and herald-uws), on fresh
 * processes: RSS of its servers before and after COUNT idle connections in one room (default
 * 10,000), per connection, and for herald replicas the V8 heap by space from their /metrics.
 * HERALD_NODE_OPTIONS passes flags to the replicas' node. SNAPSHOT=<dir> also has each herald
 * replica write a heap snapshot before and after (compare them in Chrome DevTools' Memory tab).
 */
import { mkdirSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import * as scenarios from '../loadtest/harness/scenarios.js';
import { Workers } from '../loadtest/harness/workers.js';
import { CLIENT_CPU, pinToClientCpu, rssBytes, STACKS, type Stack } from './stacks.js';

pinToClientCpu();
const count = Number(process.env.COUNT ?? 10_000);
const snapshots = process.env.SNAPSHOT;
if (snapshots) {
  mkdirSync(snapshots, { recursive: true });
  process.env.HERALD_NODE_OPTIONS = `${process.env.HERALD_NODE_OPTIONS ?? ''} --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapshots}`.trim();
}
const names = process.argv.slice(2).length ? process.argv.slice(2) : ['herald-uws-1', 'herald-uws'];
for (const n of names) if (!STACKS[n]) throw new Error(`unknown stack ${n}; known: ${Object.keys(STACKS).join(', ')}`);

type Reading = Record<string, number>;

/** RSS of every server, plus the heap figures herald replicas export (summed over servers). */
async function read(stack: Stack, herald: boolean): Promise<Reading> {
  const r: Reading = { rss: stack.servers.reduce((a, p) => a + rssBytes(p.pid), 0) };
  if (!herald) return r;
  for (const url of stack.urls) {
    const text = await (await fetch(`${url}/metrics`)).text();
    const add = (k: string, v: string | undefined) => (r[k] = (r[k] ?? 0) + Number(v ?? NaN));
    add('heap used', /^herald_nodejs_heap_size_used_bytes (\d+)$/m.exec(text)?.[1]);
    add('heap committed', /^herald_nodejs_heap_size_total_bytes (\d+)$/m.exec(text)?.[1]);
    for (const m of text.matchAll(/^herald_nodejs_heap_space_size_(used|total)_bytes\{space="(\w+)"\} (\d+)$/gm)) {
      if (m[2] === 'new' || m[2] === 'old' || m[2] === 'large_object') add(`${m[2]} space ${m[1] === 'total' ? 'committed' : 'used'}`, m[3]);
    }
  }
  return r;
}

/** Has every herald replica write a heap snapshot; the answer to a request after the signal means it is written. */
async function snapshot(stack: Stack): Promise<void> {
  for (const [i, p] of stack.servers.entries()) {
    process.kill(p.pid, 'SIGUSR2');
    await delay(200);
    await fetch(`${stack.urls[i]}/healthz`);
  }
}

const workers = await Workers.start(2, { cpus: CLIENT_CPU });
try {
  for (const name of names) {
    const stack = await STACKS[name]!();
    const herald = name.startsWith('herald');
    try {
      if (snapshots && herald) await snapshot(stack);
      const before = await read(stack, herald);
      let after: Reading = {};
      const r = await scenarios.connections(
        workers,
        {
          urls: stack.urls,
          rss: async () => {
            after = await read(stack, herald);
            if (snapshots && herald) await snapshot(stack);
            return after.rss!;
          },
        },
        { count, holdSeconds: Number(process.env.HOLD ?? 3) },
      );
      console.log(`${name}: ${r.connected} idle connections on ${stack.servers.length} server process(es), ${r.bytesPerConnection} B of RSS each`);
      for (const k of Object.keys(before)) {
        console.log(`  ${k.padEnd(24)} ${String(before[k]).padStart(11)} → ${String(after[k]).padStart(11)}  ${((after[k]! - before[k]!) / r.connected).toFixed(0).padStart(6)} B/connection`);
      }
    } finally {
      await stack.stop();
    }
  }
} finally {
  await workers.stop();
}
if (snapshots) console.log(`heap snapshots in ${snapshots}`);
