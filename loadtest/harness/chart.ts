/** A small dependency-free SVG line chart (log-scaled x when the data spans decades). */
export interface Series {
  name: string;
  points: [number, number][];
}

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2'];

export function lineChart(o: { title: string; xLabel: string; yLabel: string; series: Series[]; width?: number; height?: number }): string {
  const W = o.width ?? 640;
  const H = o.height ?? 360;
  const pad = { l: 70, r: 20, t: 36, b: 56 };
  const pts = o.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (pts.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><text x="10" y="20">${esc(o.title)}: no data</text></svg>`;
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const logX = Math.min(...xs) > 0 && Math.max(...xs) / Math.min(...xs) >= 20;
  const fx = (x: number) => (logX ? Math.log10(x) : x);
  const [x0, x1] = [Math.min(...xs.map(fx)), Math.max(...xs.map(fx))];
  const y1 = Math.max(...ys) * 1.1 || 1;
  const sx = (x: number) => pad.l + ((fx(x) - x0) / (x1 - x0 || 1)) * (W - pad.l - pad.r);
  const sy = (y: number) => H - pad.b - (y / y1) * (H - pad.t - pad.b);
  const ticks = Array.from({ length: 5 }, (_, i) => (y1 / 4) * i);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(o.title)}</text>`,
    `<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="#333"/>`,
    `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" stroke="#333"/>`,
    `<text x="${W / 2}" y="${H - 14}" text-anchor="middle">${esc(o.xLabel)}${logX ? ' (log scale)' : ''}</text>`,
    `<text x="16" y="${H / 2}" text-anchor="middle" transform="rotate(-90 16 ${H / 2})">${esc(o.yLabel)}</text>`,
  ];
  for (const t of ticks) {
    out.push(`<line x1="${pad.l - 4}" y1="${sy(t)}" x2="${W - pad.r}" y2="${sy(t)}" stroke="#eee"/>`);
    out.push(`<text x="${pad.l - 6}" y="${sy(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
    out.push(`<text x="${sx(x)}" y="${H - pad.b + 16}" text-anchor="middle">${fmt(x)}</text>`);
  }
  o.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).sort((a, b) => a[0] - b[0]);
    if (p.length === 0) return;
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${p.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
    for (const [x, y] of p) out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${color}"/>`);
    out.push(`<rect x="${pad.l + 10}" y="${pad.t + 4 + i * 16}" width="10" height="10" fill="${color}"/>`);
    out.push(`<text x="${pad.l + 24}" y="${pad.t + 13 + i * 16}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

function fmt(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(n % 1e6 ? 1 : 0)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(n % 1e3 ? 1 : 0)}k`;
  return String(Math.round(n * 10) / 10);
}

function esc(s: string): string {
  return s.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]!);
}
