/**
 * `node --import tsx bench/perf-split.ts <perf.data> <messages> [hz]`: where a server process's
 * CPU went per published message, from a `perf record -g` file of bench/hop.ts's `PERF_RECORD`
 * (sampled at 999 Hz unless told). Each sample is put in one place:
 * - `sends` when the stack is in the `sendto` system call (the writes to the subscribers, the
 *   receiving side's loopback TCP work included);
 * - `other threads` when it is not on the main thread (V8's optimizing compiler, GC helpers);
 * - else by the outermost JavaScript function on the stack (what the event loop called: the HTTP
 *   request of a publish, a socket read, timers), named as `--perf-basic-prof` names it, which
 *   the replica must have been started with (`HERALD_NODE_OPTIONS=--perf-basic-prof`);
 * - else `native`: uWS, libuv and the loop's own turns.
 * Prints µs per message and the share of the process's samples, largest first.
 */
import { spawnSync } from 'node:child_process';

const [file, messagesArg, hzArg] = process.argv.slice(2);
if (!file || !messagesArg) {
  console.error('usage: node --import tsx bench/perf-split.ts <perf.data> <messages> [hz]');
  process.exit(2);
}
const messages = Number(messagesArg);
const hz = Number(hzArg ?? 999);

const out = spawnSync('perf', ['script', '-i', file, '-F', 'pid,tid,ip,sym'], { encoding: 'utf8', maxBuffer: 1 << 30 });
if (out.status !== 0) {
  console.error(out.stderr);
  process.exit(1);
}

/** A frame's function as perf prints it, offsets and library left out. */
const frameName = (line: string): string => line.trim().replace(/^[0-9a-f]+\s+/, '').replace(/\+0x[0-9a-f]+$/, '');

const places = new Map<string, number>();
let total = 0;
for (const block of out.stdout.split('\n\n')) {
  const lines = block.split('\n').filter((l) => l.trim() !== '');
  if (lines.length < 2) continue;
  const [pidTid] = lines[0]!.trim().split(/\s+/);
  const [pid, tid] = pidTid!.includes('/') ? pidTid!.split('/') : [pidTid, pidTid];
  const frames = lines.slice(1).map(frameName);
  total++;
  let place: string;
  if (frames.some((f) => f.startsWith('__sys_sendto'))) place = 'sends';
  else if (pid !== tid) place = 'other threads';
  else {
    const js = frames.filter((f) => f.startsWith('JS:'));
    // perf lists the innermost frame first: the last JavaScript frame is the outermost.
    place = js.length > 0 ? js[js.length - 1]!.replace(/^JS:[*^~]?/, '').replace(/file:\/\/\/.*?\/(dist|node_modules)\//, '') : 'native';
  }
  places.set(place, (places.get(place) ?? 0) + 1);
}

const usPerSample = 1e6 / hz;
console.log(`${file}: ${total} samples, ${((total * usPerSample) / messages).toFixed(0)} µs per message over ${messages} messages`);
for (const [place, n] of [...places].sort((a, b) => b[1] - a[1])) {
  if (n / total < 0.003) continue;
  console.log(`${((n * usPerSample) / messages).toFixed(1).padStart(8)} µs  ${((100 * n) / total).toFixed(1).padStart(5)} %  ${place}`);
}
