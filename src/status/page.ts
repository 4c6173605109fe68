/**
 * The status page at `GET /`: one self-contained HTML document (no build step). It polls
 * `/v1/stats` every second and follows the demo room over Socket.IO, so a `curl` publish to
 * `demo:live-score` shows up on every page, whichever replica the balancer picked.
 */
export const DEMO_ROOM = 'demo:live-score';

/**
 * The page for a server whose Socket.IO answers on `socketioPath` (`SOCKETIO_PATH`): it loads the
 * client from there and connects there. The path is embedded as is: config allows only characters
 * that mean nothing to HTML or JavaScript (`A-Z a-z 0-9 . _ ~ - /`).
 */
export function statusPageHtml(socketioPath: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>herald status</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1d2330; background: #f5f6f8; }
  body { margin: 0 auto; max-width: 60rem; padding: 1.5rem; }
  h1 { font-size: 1.4rem; margin: 0 0 .2rem; }
  .sub { color: #5b6475; margin-bottom: 1.2rem; }
  .cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: .8rem; margin-bottom: 1.2rem; }
  .card { background: #fff; border-radius: .5rem; padding: .8rem 1rem; box-shadow: 0 1px 2px #0002; }
  .card .v { font-size: 1.6rem; font-weight: 600; font-variant-numeric: tabular-nums; }
  .card .k { color: #5b6475; font-size: .85rem; }
  table { width: 100%; border-collapse: collapse; background: #fff; border-radius: .5rem; overflow: hidden; box-shadow: 0 1px 2px #0002; }
  th, td { text-align: right; padding: .45rem .8rem; font-variant-numeric: tabular-nums; }
  th:first-child, td:first-child { text-align: left; }
  th { background: #eceef2; font-weight: 600; font-size: .85rem; }
  tr.me td:first-child::after { content: " (this page)"; color: #5b6475; }
  .demo { margin-top: 1.2rem; background: #fff; border-radius: .5rem; padding: 1rem; box-shadow: 0 1px 2px #0002; }
  .score { font-size: 2.2rem; font-weight: 700; font-variant-numeric: tabular-nums; }
  code { background: #eceef2; padding: .1rem .3rem; border-radius: .25rem; font-size: .85rem; word-break: break-all; }
  .muted { color: #5b6475; font-size: .85rem; }
</style>
</head>
<body>
<h1>herald</h1>
<div class="sub">Replica <b id="replica">…</b> · cluster of <b id="replicas">…</b> · <span id="updated" class="muted"></span></div>
<div class="cards">
  <div class="card"><div class="v" id="connections">–</div><div class="k">connections (cluster)</div></div>
  <div class="card"><div class="v" id="rooms">–</div><div class="k">rooms (sum of replicas)</div></div>
  <div class="card"><div class="v" id="rate">–</div><div class="k">messages delivered / s</div></div>
  <div class="card"><div class="v" id="p99">–</div><div class="k">p99 fan-out latency (worst replica)</div></div>
</div>
<table>
  <thead><tr><th>replica</th><th>state</th><th>connections</th><th>rooms</th><th>published/s</th><th>delivered/s</th><th>p99 ms</th></tr></thead>
  <tbody id="table"></tbody>
</table>
<div class="demo">
  <div class="muted">Live score (room <code>${DEMO_ROOM}</code>) · this page is connected to <b id="via">…</b></div>
  <div class="score" id="score">waiting for a publish…</div>
  <div class="muted" id="meta"></div>
  <p class="muted">Update it from any shell: <code id="curl"></code></p>
</div>
<script src="${socketioPath}/socket.io.js"></script>
<script>
  const $ = (id) => document.getElementById(id);
  const fmt = (n) => n === null || n === undefined ? '–' : Number(n).toLocaleString('en');
  $('curl').textContent = "curl " + location.origin + "/v1/publish -H 'authorization: Bearer <key>' -d '{\\"room\\":\\"${DEMO_ROOM}\\",\\"event\\":\\"score\\",\\"data\\":{\\"home\\":2,\\"away\\":1}}'";
  async function refresh() {
    try {
      const res = await fetch('/v1/stats', { cache: 'no-store' });
      const { replica, cluster } = await res.json();
      $('replica').textContent = replica;
      $('replicas').textContent = cluster.length;
      const sum = (k) => cluster.reduce((a, r) => a + (r[k] || 0), 0);
      $('connections').textContent = fmt(sum('connections'));
      $('rooms').textContent = fmt(sum('rooms'));
      $('rate').textContent = fmt(sum('deliveredPerSecond'));
      const p99s = cluster.map((r) => r.p99Ms).filter((v) => v !== null);
      $('p99').textContent = p99s.length ? Math.max(...p99s) + ' ms' : '–';
      $('table').innerHTML = cluster.map((r) =>
        '<tr class="' + (r.replica === replica ? 'me' : '') + '"><td>' + r.replica + '</td><td>' + r.phase + '</td><td>' + fmt(r.connections) +
        '</td><td>' + fmt(r.rooms) + '</td><td>' + fmt(r.publishedPerSecond) + '</td><td>' + fmt(r.deliveredPerSecond) + '</td><td>' + (r.p99Ms ?? '–') + '</td></tr>').join('');
      $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    } catch (e) {
      $('updated').textContent = 'stats unavailable: ' + e.message;
    }
  }
  refresh();
  setInterval(refresh, 1000);
  const socket = io({ path: '${socketioPath}', transports: ['websocket', 'polling'] });
  socket.on('herald:hello', (h) => { $('via').textContent = h.replica; });
  socket.on('connect', async () => {
    const ack = await socket.emitWithAck('subscribe', '${DEMO_ROOM}');
    if (!ack.ok) $('score').textContent = 'demo room unavailable: ' + ack.error.code + ' (needs ALLOW_ANONYMOUS and ${DEMO_ROOM} in PUBLIC_ROOMS)';
  });
  socket.on('score', (data, meta) => {
    $('score').textContent = typeof data === 'object' && data !== null && 'home' in data ? data.home + ' : ' + data.away : JSON.stringify(data);
    $('meta').textContent = 'id ' + meta.id + ' · published ' + new Date(meta.ts).toLocaleTimeString() + ' · arrived after ' + Math.max(0, Date.now() - meta.ts) + ' ms';
  });
</script>
</body>
</html>
`;
}
