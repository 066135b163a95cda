import type { BenchRow } from './bench-analysis.js';

const f = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '—');
const pct = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '—' : `${x >= 0 ? '+' : ''}${x.toFixed(0)}%`);

function bytes(n: number): string {
  if (n < 10_000) return `${n} B`;
  if (n < 10_000_000) return `${(n / 1000).toFixed(1)} kB`;
  return `${(n / 1e6).toFixed(1)} MB`;
}

/** The rows as an aligned text table (or Markdown), then one line per row with its stages and hops. */
export function formatBenchTable(rows: BenchRow[], markdown = false): string {
  const head = [
    'split', 'conc', 'TTFT ms', 'pred', 'err', 'prefill tok/s', 'decode tok/s', 'total tok/s', 'ms/token', 'p50', 'p95',
    'compute', 'transfer', 'queue', 'coord', 'parts', 'pred ms/token', 'err',
  ];
  const body = rows.map((r) => [
    r.kind === 'pipeline' ? r.label : r.label,
    String(r.concurrency),
    f(r.ttftMs),
    r.predicted ? f(r.predicted.ttftMs) : '—',
    pct(r.errorPct?.ttft),
    f(r.prefillTokPerS, 0),
    f(r.decodeTokPerS),
    f(r.throughputTokPerS),
    f(r.tokenLatencyMs, 2),
    f(r.tokenLatencyP50Ms, 2),
    f(r.tokenLatencyP95Ms, 2),
    f(r.parts.computeMs, 2),
    f(r.parts.transferMs, 2),
    f(r.parts.queueMs, 2),
    f(r.parts.coordinatorMs, 2),
    f(r.parts.sumMs, 2),
    r.predicted ? f(r.predicted.tokenLatencyMs, 2) : '—',
    pct(r.errorPct?.tokenLatency),
  ]);
  let out: string;
  if (markdown) {
    out = `| ${head.join(' | ')} |\n|${head.map((_, i) => (i < 1 ? ':--' : '--:')).join('|')}|\n`;
    out += body.map((cells) => `| ${cells.join(' | ')} |`).join('\n') + '\n';
  } else {
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
    const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
    out = `${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${body.map(line).join('\n')}\n`;
  }
  out += '\n';
  for (const r of rows) {
    const stages = r.stages.map((s) => `${s.name} [${s.startLayer}, ${s.endLayer}) ${f(s.computeMs, 2)} ms (prompt ${f(s.prefillComputeMs, 2)})`).join(', ');
    const hops = r.hops.map((h) => `${h.from}→${h.to} ${f(h.transferMs, 2)} ms (${bytes(h.decodeBytes)}/token, ${bytes(h.prefillBytes)} prompt)`).join(', ');
    const p = r.predicted;
    const pred = p && p.stageComputeMs.length > 0
      ? `; predicted compute ${p.stageComputeMs.map((x) => f(x, 2)).join(' / ')} ms${p.stagePromptMs ? ` (prompt ${p.stagePromptMs.map((x) => f(x, 2)).join(' / ')})` : ''}${p.hopMs.length > 0 ? `, hops ${p.hopMs.map((x) => f(x, 2)).join(' / ')} ms` : ''}`
      : '';
    out += `${markdown ? '- ' : '  '}${r.label}${r.concurrency > 1 ? ` ×${r.concurrency}` : ''}: ${stages}${hops ? `; hops ${hops}` : ''}${pred}${r.note ? ` (${r.note})` : ''}\n`;
  }
  return out;
}
