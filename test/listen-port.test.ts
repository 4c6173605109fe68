import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { runGatewayToExit, startGateway, type Gateway } from './helpers/gateway.js';

const TRANSPORTS = ['uws', 'node'] as const;

/**
 * A port belongs to one gateway. uWS listens with SO_REUSEPORT unless told otherwise, so a second
 * gateway started on a port a uWS gateway held used to start and silently share it (the kernel
 * spreading new connections between both); now it exits at start-up, naming PORT.
 */
describe('a port already in use', () => {
  const gateways: Gateway[] = [];
  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
  });

  for (const first of TRANSPORTS) {
    for (const second of TRANSPORTS) {
      it(`stops a ${second} gateway from starting on a ${first} gateway's PORT, with an error naming PORT`, async () => {
        const holder = await startGateway({ env: { TRANSPORT: first } });
        gateways.push(holder);
        const run = await runGatewayToExit({ TRANSPORT: second, PORT: String(holder.port) });
        assert.equal(run.code, 1, `the second gateway exits 1; its output: ${run.stdout}${run.stderr}`);
        const fatal = run.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; err?: { message: string } }).find((l) => l.msg === 'could not start');
        assert.ok(fatal, `a "could not start" line: ${run.stdout}`);
        assert.match(fatal.err!.message, new RegExp(`^could not listen on 127\\.0\\.0\\.1:${holder.port} \\(PORT=${holder.port}\\): another process already listens on it`));
        assert.equal(run.stdout.includes('"msg":"listening"'), false);
        // The first gateway still holds the port alone and answers on it.
        const health = await fetch(`${holder.url}/healthz`);
        assert.equal(health.status, 200);
        await holder.stop();
      });
    }
  }

  it('stops a gateway from starting on a METRICS_PORT in use, with an error naming METRICS_PORT', async () => {
    const holder = await startGateway({ env: { TRANSPORT: 'node' } });
    gateways.push(holder);
    const run = await runGatewayToExit({ METRICS_PORT: String(holder.port) });
    assert.equal(run.code, 1);
    assert.match(run.stdout, new RegExp(`could not listen on 127\\.0\\.0\\.1:${holder.port} \\(METRICS_PORT=${holder.port}\\): another process already listens on it \\(EADDRINUSE\\)`));
    await holder.stop();
  });
});
