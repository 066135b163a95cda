import type { BenchRow } from './bench-analysis.js';

const STAGE_COLORS = ['#2f6db5', '#4e9a5a', '#8a5cb0', '#1f9aa6', '#b58a2f', '#5c6fb0', '#7aa63a', '#a6466b'];
const HOP_COLORS = ['#e8833a', '#f2b134', '#d9534f', '#f08fb0', '#c96f2a', '#e0c04a'];
const QUEUE_COLOR = '#b8b8b8';
const COORDINATOR_COLOR = '#7d6b91';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A round step for axis ticks: 1, 2 or 5 × 10^n, giving about `count` ticks up to `max`. */
function tickStep(max: number, count: number): number {
  const raw = max / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

export interface PlotOptions {
  title: string;
  subtitle?: string;
}

/**
 * Stacked horizontal bars, one per row: each stage's compute, each hop's transfer and the queueing of one decode
 * step (ms), with the partitioner's predicted per-token time as a black tick and the measured wall time per token
 * written at the bar's end.
 */
export function renderBenchSvg(rows: BenchRow[], opts: PlotOptions): string {
  const labelW = 190;
  const rightW = 170;
  const plotW = 560;
  const barH = 24;
  const gap = 14;
  const top = opts.subtitle ? 78 : 60;
  const maxStages = Math.max(1, ...rows.map((r) => r.stages.length));
  const maxHops = Math.max(0, ...rows.map((r) => r.hops.length));
  const legend: { color: string; text: string }[] = [
    ...Array.from({ length: maxStages }, (_, i) => ({ color: STAGE_COLORS[i % STAGE_COLORS.length], text: `stage ${i + 1} compute` })),
    ...Array.from({ length: maxHops }, (_, i) => ({ color: HOP_COLORS[i % HOP_COLORS.length], text: `hop ${i + 1} transfer` })),
    { color: QUEUE_COLOR, text: 'queueing / handoff' },
    { color: COORDINATOR_COLOR, text: 'coordinator between tokens' },
  ];
  const legendRows = Math.ceil((legend.length + 1) / 4);
  const plotH = rows.length * (barH + gap);
  const height = top + plotH + 40 + legendRows * 22 + 16;
  const width = labelW + plotW + rightW;
  const maxMs = Math.max(1e-9, ...rows.map((r) => Math.max(r.parts.sumMs, r.tokenLatencyMs, r.predicted?.tokenLatencyMs ?? 0)));
  const step = tickStep(maxMs, 6);
  const axisMax = Math.ceil(maxMs / step) * step;
  const x = (ms: number) => labelW + (ms / axisMax) * plotW;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="16" y="26" font-size="16" font-weight="bold">${esc(opts.title)}</text>`);
  if (opts.subtitle) out.push(`<text x="16" y="46" fill="#444">${esc(opts.subtitle)}</text>`);
  out.push(`<text x="${labelW}" y="${top - 10}" fill="#444">ms per generated token (one decode step)</text>`);
  for (let t = 0; t <= axisMax + 1e-9; t += step) {
    out.push(`<line x1="${x(t).toFixed(1)}" y1="${top}" x2="${x(t).toFixed(1)}" y2="${top + plotH}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${x(t).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle" fill="#444">${Number(t.toPrecision(6))}</text>`);
  }
  rows.forEach((r, i) => {
    const y = top + i * (barH + gap) + gap / 2;
    const label = r.kind === 'pipeline' ? `${r.stages.length} node${r.stages.length > 1 ? 's' : ''}: ${r.label}${r.concurrency > 1 ? ` ×${r.concurrency}` : ''}` : r.label;
    out.push(`<text x="${labelW - 8}" y="${y + barH / 2 + 4}" text-anchor="end">${esc(label)}</text>`);
    let at = 0;
    const seg = (ms: number, color: string, what: string) => {
      if (!(ms > 0)) return;
      out.push(`<rect x="${x(at).toFixed(2)}" y="${y}" width="${(x(at + ms) - x(at)).toFixed(2)}" height="${barH}" fill="${color}" stroke="#fff" stroke-width="0.5"><title>${esc(`${what}: ${ms.toFixed(2)} ms`)}</title></rect>`);
      at += ms;
    };
    r.stages.forEach((s, j) => seg(s.computeMs, STAGE_COLORS[j % STAGE_COLORS.length], `${s.name} layers [${s.startLayer}, ${s.endLayer}) compute`));
    r.hops.forEach((h, j) => seg(h.transferMs, HOP_COLORS[j % HOP_COLORS.length], `${h.from}→${h.to} transfer`));
    seg(r.parts.queueMs, QUEUE_COLOR, 'queueing / handoff');
    seg(r.parts.coordinatorMs, COORDINATOR_COLOR, 'coordinator between tokens');
    const p = r.predicted?.tokenLatencyMs;
    if (p !== undefined && Number.isFinite(p)) {
      const px = x(p).toFixed(1);
      out.push(`<line x1="${px}" y1="${y - 4}" x2="${px}" y2="${y + barH + 4}" stroke="#000" stroke-width="2.5"><title>predicted ${p.toFixed(2)} ms</title></line>`);
    }
    const err = r.errorPct ? ` (pred ${p!.toFixed(1)}, ${r.errorPct.tokenLatency >= 0 ? '+' : ''}${r.errorPct.tokenLatency.toFixed(0)}%)` : '';
    out.push(`<text x="${labelW + plotW + 8}" y="${y + barH / 2 + 4}">${esc(`${r.tokenLatencyMs.toFixed(1)} ms${err}`)}</text>`);
  });
  const ly = top + plotH + 36;
  legend.forEach((l, i) => {
    const lx = 16 + (i % 4) * 190;
    const yy = ly + Math.floor(i / 4) * 22;
    out.push(`<rect x="${lx}" y="${yy}" width="14" height="14" fill="${l.color}"/><text x="${lx + 20}" y="${yy + 11}">${esc(l.text)}</text>`);
  });
  const lx = 16 + (legend.length % 4) * 190;
  const yy = ly + Math.floor(legend.length / 4) * 22;
  out.push(`<line x1="${lx + 7}" y1="${yy - 1}" x2="${lx + 7}" y2="${yy + 15}" stroke="#000" stroke-width="2.5"/><text x="${lx + 20}" y="${yy + 11}">predicted (partitioner)</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
