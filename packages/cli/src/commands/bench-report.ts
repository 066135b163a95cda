import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { basename } from 'node:path';
import type { BenchResponse } from '@edge-node/node';
import { median, type BenchRow } from './bench-analysis.js';
import type { SplitMeasurements } from './bench-measure.js';
import type { BenchOptions } from './bench-options.js';
import { renderBenchSvg } from './bench-plot.js';
import { formatSpeculationTable, type SpeculationRow } from './bench-speculation.js';
import { formatBenchTable } from './bench-table.js';

export interface BenchReport {
  model: { path: string | null; name: string; layers: number; hiddenSize: number };
  request: { promptTokens: number; genTokens: number; runs: number; concurrency: number[] };
  machine: { cpus: number; cpuModel: string; loadAverage: number[] };
  mode: 'nodes' | 'api';
  nodes: number;
  rows: BenchRow[];
  /** The prefix cache: whether the runs could use it, their prompt and cached tokens, the coordinator's cache after them. */
  prefixCache: { enabled: boolean; promptTokens: number; cachedTokens: number; coordinator: BenchResponse['prefixCache'] };
  /** Each split's decode with speculation off and on (a quoting prompt) at each concurrency; empty with --no-speculation. */
  speculation: SpeculationRow[];
  checks: {
    /** Largest |parts − whole| / whole over the rows, %. */
    partsVsWholeMaxPct: number;
    /** Largest |predicted − measured| / predicted per-token latency over the pipeline rows at concurrency 1, %. */
    predictionMaxErrorPct: number | null;
  };
}

/** The measured model as the report names it. */
export interface BenchModel {
  path: string | null;
  name: string;
  layers: number;
  hiddenSize: number;
}

/** The report of the measurements, with its checks: parts against the whole, predictions against the measure. */
export function benchReport(o: BenchOptions, model: BenchModel, m: SplitMeasurements): BenchReport {
  const { rows } = m;
  const partsErr = rows.map((r) => (Math.abs(r.parts.sumMs - r.tokenLatencyMs) / r.tokenLatencyMs) * 100);
  const predErr = predictionErrors(rows);
  return {
    model,
    request: { promptTokens: o.promptTokens, genTokens: o.genTokens, runs: o.runs, concurrency: o.concurrency },
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', loadAverage: loadavg() },
    mode: o.api !== undefined ? 'api' : 'nodes',
    nodes: o.api !== undefined ? m.info.members.length : o.nodes,
    rows,
    checks: { partsVsWholeMaxPct: Math.max(0, ...partsErr), predictionMaxErrorPct: predErr.length ? Math.max(...predErr) : null },
    prefixCache: { enabled: o.prefixCache, ...m.prefix, coordinator: m.lastClient?.lastPrefixCache ?? null },
    speculation: m.speculation,
  };
}

const predictionErrors = (rows: BenchRow[]) => rows.filter((r) => r.kind === 'pipeline' && r.concurrency === 1 && r.errorPct).map((r) => Math.abs(r.errorPct!.tokenLatency));

/** Prints the table and the checks on stdout, and writes --json and --plot. */
export async function writeBenchReport(o: BenchOptions, report: BenchReport, elapsedMs: number): Promise<void> {
  const { rows } = report;
  const { promptTokens: p, genTokens: g, runs } = o;
  const title = `${report.model.path ? basename(report.model.path).replace(/\.gguf$/i, '') : report.model.name}: where a token's time goes`;
  process.stdout.write(
    `\n${title} — prompt ${p}, gen ${g}, ${runs} run(s) after a warm-up (TTFT and tok/s: medians; ms/token and its parts: means per decode step); ${report.nodes} node(s) on ${report.mode === 'nodes' ? 'loopback' : o.api}; ${(elapsedMs / 1000).toFixed(0)} s\n\n`,
  );
  process.stdout.write(formatBenchTable(rows, o.markdown));
  const predErr = predictionErrors(rows);
  const medErr = predErr.length ? median(predErr).toFixed(0) : '—';
  process.stdout.write(
    `\nparts vs whole: at most ${report.checks.partsVsWholeMaxPct.toFixed(1)}% apart; prediction error (ms/token, concurrency 1): ` +
      `median ${medErr}%, at most ${report.checks.predictionMaxErrorPct?.toFixed(0) ?? '—'}%\n`,
  );
  const pc = report.prefixCache.coordinator;
  const prefix = report.prefixCache;
  process.stdout.write(
    `prefix cache${prefix.enabled ? '' : ' (not used by the measured runs; --prefix-cache to use it)'}: ${prefix.cachedTokens} of ${prefix.promptTokens} prompt tokens of the measured runs taken from the stages' caches` +
      (pc ? `; the coordinator's stage keeps ${pc.stage.blocks} blocks (${(pc.stage.bytes / 2 ** 20).toFixed(1)} of ${(pc.stage.budgetBytes / 2 ** 20).toFixed(0)} MiB), ${pc.stage.hits} hits, ${pc.stage.misses} misses, ${pc.stage.evictedBlocks} evicted\n` : '\n'),
  );
  if (report.speculation.length > 0) {
    process.stdout.write(
      `\nspeculative decoding — a quoting prompt (a passage repeated: prompt lookup drafts from it), greedy, ${runs} run(s) of each mode interleaved after a warm-up; decode tok/s (one request) and total tok/s (all in flight): medians (--no-speculation to skip)\n\n`,
    );
    process.stdout.write(formatSpeculationTable(report.speculation, o.markdown));
  }
  if (o.json) await writeFile(o.json, `${JSON.stringify(report, null, 2)}\n`);
  if (o.plot) {
    await writeFile(
      o.plot,
      renderBenchSvg(rows, {
        title,
        subtitle: `prompt ${p} tokens, ${g} generated, ${runs} runs after a warm-up (mean per decode step); ${report.machine.cpus} cores; black tick = partitioner's prediction`,
      }),
    );
  }
}
