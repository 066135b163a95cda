import type { BenchResponse } from '@edge-node/node';
import { median, throughputOf } from './bench-analysis.js';

/**
 * One split's decode with speculation off and on, side by side at one concurrency: the same quoting prompt (a
 * passage repeated, which prompt lookup drafts from), greedy, batches of each mode interleaved.
 */
export interface SpeculationRow {
  label: string;
  /** Layers per stage, in ring order, as the runs took them. */
  split: number[];
  /** Requests in flight. */
  concurrency: number;
  /** Measured batches of each mode. */
  runs: number;
  /** Median decode speed of one request (its generation's decode timing: tokens after the first / decode time). */
  offDecodeTokPerS: number;
  onDecodeTokPerS: number;
  /** Median aggregate throughput of a batch: its tokens over the time until its last request finished. */
  offThroughputTokPerS: number;
  onThroughputTokPerS: number;
  /** on / off, of one request's decode speed. */
  speedup: number;
  /** Totals over the speculating requests. */
  drafted: number;
  accepted: number;
  /** accepted / drafted (0 when nothing was drafted). */
  acceptance: number;
  /** Tokens the speculating requests' decode walks returned, per walk. */
  tokensPerWalk: number;
}

/** Both modes' batches (one response per request, one run per response) as a row. */
export function speculationRow(off: readonly BenchResponse[][], on: readonly BenchResponse[][]): SpeculationRow {
  const offRuns = off.flat().flatMap((r) => r.runs);
  const onRuns = on.flat().flatMap((r) => r.runs);
  const split = (on[0]?.[0] ?? off[0][0]).route.stages.map((s) => s.endLayer - s.startLayer);
  const stats = onRuns.map((r) => r.speculation ?? { drafted: 0, accepted: 0, walks: r.generatedTokens - 1, tokens: r.generatedTokens - 1, draftLength: 0 });
  const total = (k: 'drafted' | 'accepted' | 'walks' | 'tokens') => stats.reduce((n, s) => n + s[k], 0);
  const offDecode = median(offRuns.map((r) => r.decodeTokPerS));
  const onDecode = median(onRuns.map((r) => r.decodeTokPerS));
  return {
    label: split.join(','),
    split,
    concurrency: on[0]?.length ?? off[0].length,
    runs: Math.min(off.length, on.length),
    offDecodeTokPerS: offDecode,
    onDecodeTokPerS: onDecode,
    offThroughputTokPerS: median(off.map(throughputOf)),
    onThroughputTokPerS: median(on.map(throughputOf)),
    speedup: onDecode / offDecode,
    drafted: total('drafted'),
    accepted: total('accepted'),
    acceptance: total('drafted') > 0 ? total('accepted') / total('drafted') : 0,
    tokensPerWalk: total('walks') > 0 ? total('tokens') / total('walks') : Number.NaN,
  };
}

const f = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '—');

/** The rows as an aligned text table (or Markdown). */
export function formatSpeculationTable(rows: readonly SpeculationRow[], markdown = false): string {
  const head = ['split', 'conc', 'decode tok/s off', 'on', 'speed-up', 'total tok/s off', 'on', 'tokens/walk', 'accepted/drafted'];
  const body = rows.map((r) => [
    r.label,
    String(r.concurrency),
    f(r.offDecodeTokPerS),
    f(r.onDecodeTokPerS),
    `${f(r.speedup, 2)}×`,
    f(r.offThroughputTokPerS),
    f(r.onThroughputTokPerS),
    f(r.tokensPerWalk, 2),
    `${r.accepted}/${r.drafted}${r.drafted > 0 ? ` (${(r.acceptance * 100).toFixed(0)}%)` : ''}`,
  ]);
  if (markdown) {
    return `| ${head.join(' | ')} |\n|${head.map((_, i) => (i < 1 ? ':--' : '--:')).join('|')}|\n${body.map((cells) => `| ${cells.join(' | ')} |`).join('\n')}\n`;
  }
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return `${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${body.map(line).join('\n')}\n`;
}
