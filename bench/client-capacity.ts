/**
 * `node --import tsx bench/client-capacity.ts`: what one client core can take. The harness's
 * worker processes (2, on the client CPU, as in `npm run bench`) connect to bench/blaster.cjs on
 * the server CPU, which writes prebuilt event frames 64 KiB at a time as fast as each socket drains
 * and so costs little per frame; the client core is then the limit. Prints frames/s received and
 * the client processes' CPU over wall time. CONNECTIONS (default 1000), CAPACITY_SECONDS (default 5),
 * BLAST_WRITE_BYTES (default 65536: the blaster's bytes per write, whole frames).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { loopbackAddresses, Workers } from '../loadtest/harness/workers.js';
import { CLIENT_CPU, pinToClientCpu, start } from './stacks.js';
import { freePort } from '../test/helpers/ports.js';

pinToClientCpu();
const connections = Number(process.env.CONNECTIONS ?? 1000);
const seconds = Number(process.env.CAPACITY_SECONDS ?? 5);
const port = await freePort();
const blaster = await start(process.execPath, ['bench/blaster.cjs'], { PORT: String(port), BLAST_SECONDS: String(seconds + 60), BLAST_WRITE_BYTES: process.env.BLAST_WRITE_BYTES ?? '65536' }, /^listening/);
const workers = await Workers.start(2, { cpus: CLIENT_CPU });
try {
  const per = Math.ceil(connections / workers.size);
  await workers.all(
    () => ({ cmd: 'open', urls: [`http://127.0.0.1:${port}`], count: per, rooms: ['load:cap'], roomOffset: 0, localAddresses: loopbackAddresses(4), track: 'count', sampleEvery: 200, concurrency: 100 }),
    'opened',
  );
  process.kill(blaster.pid, 'SIGUSR2');
  await delay(1000); // let the pipes fill
  await workers.reports();
  const cpu0 = workers.cpuSeconds();
  const t0 = Date.now();
  await delay(seconds * 1000);
  const delivered = (await workers.reports()).reduce((a, r) => a + r.delivered, 0);
  const wall = (Date.now() - t0) / 1000;
  const cpu = workers.cpuSeconds() - cpu0;
  console.log(`client capacity: ${Math.round(delivered / wall)} frames/s over ${connections} connections, client processes ${(cpu / wall * 100).toFixed(0)} % of the client core, ${((cpu / delivered) * 1e6).toFixed(3)} µs CPU per frame`);
} finally {
  await workers.stop();
  await blaster.stop();
}
