import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lineChart } from './chart.js';

type Result = Record<string, any>;

/** One Markdown row per scenario result: the numbers that answer "did it hold up". */
export function markdownTable(results: Record<string, Result>): string {
  const rows = ['| scenario | load | result |', '| --- | --- | --- |'];
  for (const r of Object.values(results)) {
    switch (r.scenario) {
      case 'fanout-latency':
        rows.push(`| fanout-latency | ${r.subscribers} subscribers, ${r.rate} msg/s | ${r.delivered}/${r.expected} delivered, ${r.missing} missing, ${r.duplicates} duplicate; latency p50 ${r.latencyMs.p50} ms, p95 ${r.latencyMs.p95} ms, p99 ${r.latencyMs.p99} ms |`);
        break;
      case 'throughput':
        rows.push(`| throughput | ${r.connections} connections, rates ${r.steps.map((s: Result) => s.rate).join('/')} msg/s | max ${r.maxDeliveriesPerSecond} deliveries/s; ${r.steps.map((s: Result) => `${s.rate}/s → ${s.deliveriesPerSecond}/s (p99 ${s.latencyMs.p99} ms)`).join('; ')} |`);
        break;
      case 'connections':
        rows.push(`| connections | ${r.target} idle | ${r.connected} connected, ${r.heldAfter} held, ${r.failedConnects} failed; ${r.bytesPerConnection ?? '?'} bytes RSS per connection |`);
        break;
      case 'churn':
        rows.push(`| churn | ${r.cycles} connect/subscribe/disconnect | ${r.ok} ok, ${r.failed} failed, ${r.perSecond}/s |`);
        break;
      case 'sse-fanout':
        rows.push(`| sse-fanout | ${r.streams} event streams, ${r.rate} msg/s${r.reconnects ? `, ${r.reconnects} resumes (${r.recovered} recovered)` : ''} | ${r.delivered}/${r.expected} delivered, ${r.missing} missing, ${r.duplicates} duplicate; latency p50 ${r.latencyMs.p50} ms, p95 ${r.latencyMs.p95} ms, p99 ${r.latencyMs.p99} ms |`);
        break;
      case 'recovery':
        rows.push(`| recovery | ${r.clients} clients, ${r.reconnects} reconnects | ${r.recovered} recovered, ${r.unrecovered} not; ${r.missing} missing, ${r.duplicates} duplicate |`);
        break;
    }
  }
  return rows.join('\n');
}

/** Writes `<name>.json`, `<name>.md` and `<name>.svg` (latency and deliveries against publish rate). */
export function writeReport(dir: string, name: string, report: { machine: string; results: Record<string, Result> }) {
  mkdirSync(dir, { recursive: true });
  const files = { json: join(dir, `${name}.json`), markdown: join(dir, `${name}.md`), svg: join(dir, `${name}.svg`) };
  writeFileSync(files.json, JSON.stringify(report, null, 2));
  writeFileSync(files.markdown, `# ${name}\n\nMachine: ${report.machine}\n\n${markdownTable(report.results)}\n`);
  const tp = Object.values(report.results).find((r) => r.scenario === 'throughput');
  const steps: Result[] = tp?.steps ?? [];
  writeFileSync(
    files.svg,
    lineChart({
      title: `${name}: latency against publish rate`,
      xLabel: 'publish rate (messages/s)',
      yLabel: 'ms',
      series: [
        { name: 'p50 latency', points: steps.map((s) => [s.rate, s.latencyMs.p50]) },
        { name: 'p99 latency', points: steps.map((s) => [s.rate, s.latencyMs.p99]) },
      ],
    }),
  );
  return files;
}
