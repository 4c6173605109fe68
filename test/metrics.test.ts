import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { io as connect } from 'socket.io-client';
import { connectClient, publish, type TestClient } from './helpers/clients.js';
import { startGateway, type Gateway } from './helpers/gateway.js';
import { freePort } from './helpers/ports.js';
import { onceWithin, waitFor } from './helpers/wait.js';

const KEY = 'test-publish-key-0123456789';
const ADMIN_HASH = '$2a$10$U7s9kxIfZB9kiSU9r0TdrOslX8Z2KvS5hsEsOLIibK2aZtvS9grRC'; // bcrypt of admin-password-0123
const DASHBOARD = new URL('../deploy/grafana/herald-dashboard.json', import.meta.url);

/** Names a Prometheus text exposition defines (histograms by their base name). */
function exported(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) /gm)) names.add(m[1]!);
  return names;
}

describe('metrics, dashboard and admin UI', () => {
  let gw: Gateway;
  let separate: Gateway;
  let metricsPort: number;
  const clients: TestClient[] = [];

  before(async () => {
    metricsPort = await freePort();
    [gw, separate] = await Promise.all([
      startGateway({ env: { PUBLISH_KEYS: KEY, ADMIN_UI_USERNAME: 'admin', ADMIN_UI_PASSWORD_HASH: ADMIN_HASH } }),
      startGateway({ env: { PUBLISH_KEYS: KEY, METRICS_PORT: String(metricsPort) } }),
    ]);
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all([gw?.stop(), separate?.stop()]);
  });

  it('serves Prometheus metrics behind the publish keys, counting what happened', async () => {
    assert.equal((await fetch(`${gw.url}/metrics`)).status, 401);
    const c = await connectClient(gw.url);
    clients.push(c);
    await c.subscribe('m:1');
    for (let i = 0; i < 5; i++) await publish(gw.url, { room: 'm:1', event: 'e', data: i }, KEY);
    await c.waitFor('5 messages', (r) => r.data === 4);
    const res = await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/plain/);
    const text = await res.text();
    const value = (line: string) => Number(new RegExp(`^${line.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1]);
    assert.equal(value('herald_messages_published_total{source="http"}'), 5);
    assert.equal(value('herald_messages_delivered_total'), 5);
    assert.equal(value('herald_fanout_latency_seconds_count'), 5);
    assert.equal(value('herald_connections{transport="websocket"}'), 1);
    assert.equal(value('herald_subscriptions'), 1);
    assert.equal(value('herald_lifecycle_phase{phase="ready"}'), 1);
    for (const name of ['herald_nodejs_eventloop_lag_p99_seconds', 'herald_process_resident_memory_bytes', 'herald_auth_failures_total', 'herald_slow_consumer_disconnects_total']) {
      assert.ok(exported(text).has(name), name);
    }
  });

  it('serves them on METRICS_PORT alone when configured', async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(res.status, 200);
    assert.ok(exported(await res.text()).has('herald_connections'));
    assert.equal((await fetch(`${separate.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).status, 404);
  });

  it('has a Grafana dashboard that only queries metrics herald exports', async () => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const names = exported(text);
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    let queries = 0;
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets) {
        queries++;
        for (const [metric] of expr.matchAll(/herald_[a-z0-9_]+/g)) {
          const base = metric.replace(/_(bucket|sum|count)$/, '');
          assert.ok(names.has(metric) || names.has(base), `${panel.title}: ${metric} is not exported`);
        }
      }
    }
    assert.ok(queries >= 15);
  });

  it('exposes @socket.io/admin-ui on /admin behind its login', async () => {
    const attempt = (auth: object) => {
      const s = connect(`${gw.url}/admin`, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
      return Promise.race([
        onceWithin(s, 'connect', 'admin connect').then(() => 'connected'),
        onceWithin<[Error]>(s, 'connect_error', 'admin refusal').then(([e]) => `refused: ${e.message}`),
      ]).finally(() => s.close());
    };
    assert.equal(await attempt({ username: 'admin', password: 'admin-password-0123' }), 'connected');
    assert.match(await attempt({ username: 'admin', password: 'wrong' }), /^refused/);
    await waitFor('server still up', async () => (await fetch(`${gw.url}/healthz`)).status === 200);
  });
});
