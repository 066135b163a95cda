import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { openModel, type BenchInfo, type BenchResponse } from '@edge-node/node';
import { ENGINE_FLAG_OPTIONS, engineOptionsFrom } from '../engine-flags.js';
import type { Cluster } from '@edge-node/partitioner';
import { UsageError, type CliCommand } from '../cli-command.js';
import { intOption } from '../option-parsers.js';
import { median, pipelineRow, predictSplit, singleDeviceRow, type BenchRow } from './bench-analysis.js';
import { BenchClient, BenchClusterError, LocalCluster } from './bench-cluster.js';
import { LlamaCppUnavailableError, openLlamaCpp } from './bench-llama-cpp.js';
import { measureLocal } from './bench-local.js';
import { resolveBenchModel } from './bench-model.js';
import { renderBenchSvg } from './bench-plot.js';
import { BenchProgress } from './bench-progress.js';
import { autoSplits, parseSplitSpec, resolveSplits, type SplitSpec } from './bench-splits.js';
import { formatBenchTable } from './bench-table.js';

const HELP = `Usage: edge-node bench --model PATH (--nodes N | --api URL) [options]

Measures where the time goes for each way of splitting the model over the nodes: TTFT, prefill and decode speed,
per-token latency (p50/p95) and its parts — compute per stage, transfer per hop, queueing — beside the
partitioner's prediction (from the profiles the nodes measured) and its error.

Options:
  --model PATH            GGUF file or safetensors folder; synthetic:PRESET (e.g. synthetic:smollm2-135m) generates a
                          random-weight F32 model of that shape once into --cache-dir
  --nodes N               start N local nodes on loopback (explicit addresses, no mDNS), stop them after
  --api URL               measure a running cluster at its current split instead (its coordinator's API)
  --api-key KEY           for --api (env EDGE_NODE_API_KEY)
  --splits S              all | auto | layer counts per stage, several separated by ";" (e.g. "30; 15,15; 10,10,10").
                          Default: auto (the partitioner's split for 1..N nodes)
  --strategy S            for auto: optimal (default), memory-weighted or equal
  --prompt-tokens N       prompt length, exactly (random token ids; default 128)
  --gen-tokens N          tokens generated per request, EOS ignored (default 64)
  --concurrency LIST      requests in flight, e.g. 1,2,4 (default 1)
  --runs N                measured runs after one warm-up; figures are medians (default 3)
  --baseline llama.cpp    also run llama.cpp on the same GGUF (needs the npm package node-llama-cpp)
  --llama-threads N       llama.cpp threads (default 1, like one node)
  --no-local              skip the one-node-without-network baseline
  --prefix-cache          let the measured runs take their prompt from the stages' prefix caches (they repeat the
                          warm-up's prompt: TTFT then shows a conversation's next turn); default: every run computes
                          its whole prompt. The prefix cache's hits and bytes are printed either way
  --backend kernels|tfjs  what computes in the nodes and the local baseline (default kernels)
  --threads N             compute threads of the nodes and the local baseline (default: the cores)
  --kv-cache f16|f32|q8_0 KV cache storage of the nodes and the local baseline (default f16)
  --json FILE             write every figure as JSON
  --plot FILE.svg         write stacked bars (stage compute + hop transfer per split)
  --markdown              print the table as Markdown
  --cache-dir DIR         where synthetic models go (default ~/.cache/edge-node/synthetic)
  --synthetic-tokenizer DIR  Hugging Face tokenizer folder to embed in a synthetic model
  --log-dir DIR           keep the nodes' logs here
`;

export interface BenchReport {
  model: { path: string | null; name: string; layers: number; hiddenSize: number };
  request: { promptTokens: number; genTokens: number; runs: number; concurrency: number[] };
  machine: { cpus: number; cpuModel: string; loadAverage: number[] };
  mode: 'nodes' | 'api';
  nodes: number;
  rows: BenchRow[];
  /** The prefix cache: whether the runs could use it, their prompt and cached tokens, the coordinator's cache after them. */
  prefixCache: { enabled: boolean; promptTokens: number; cachedTokens: number; coordinator: BenchResponse['prefixCache'] };
  checks: {
    /** Largest |parts − whole| / whole over the rows, %. */
    partsVsWholeMaxPct: number;
    /** Largest |predicted − measured| / predicted per-token latency over the pipeline rows at concurrency 1, %. */
    predictionMaxErrorPct: number | null;
  };
}

/** Warm-ups tried before a split whose route keeps differing is given up. */
const WARMUP_ATTEMPTS = 6;

function positive(v: string | undefined, flag: string, def: number): number {
  const n = intOption(v, flag, def);
  if (n < 1) throw new UsageError(`${flag} needs a whole number ≥ 1 (got "${v}")`);
  return n;
}

/** Runs `runs` batches of `c` simultaneous bench requests after one warm-up request. */
async function measureSplit(client: BenchClient, split: number[], concurrency: number[], p: number, g: number, runs: number, progress: BenchProgress, checkAlive: () => void): Promise<Map<number, BenchResponse[][]>> {
  const label = split.join(',');
  progress.status(`split ${label}: warm-up`);
  // The warm-up also has every stage load its layers. A node busy loading can miss heartbeats and be dropped for a
  // moment, and the coordinator then serves on fewer nodes: warm up again until the route is the asked split.
  for (let attempt = 1; ; attempt++) {
    const warm = await client.run(p, g, 1);
    checkAlive();
    const ran = warm.route.stages.map((s) => s.endLayer - s.startLayer).join(',');
    if (split.length === 0 || ran === label) break;
    if (attempt >= WARMUP_ATTEMPTS) {
      throw new BenchClusterError(`split ${label}: the coordinator still ran ${ran} after ${attempt} warm-ups (a node left while loading its layers? see the node logs)`);
    }
    progress.status(`split ${label}: the warm-up ran on ${ran} (a node was briefly lost); again`);
    await client.waitForMembers(split.length, 60_000, checkAlive);
  }
  progress.tick(`split ${label}: warm-up done`);
  const out = new Map<number, BenchResponse[][]>();
  for (const c of concurrency) {
    const batches: BenchResponse[][] = [];
    for (let r = 0; r < runs; r++) {
      progress.status(`split ${label}: ${c} in flight, run ${r + 1}/${runs}`);
      for (let attempt = 1; ; attempt++) {
        const batch = await Promise.all(Array.from({ length: c }, (_, i) => client.run(p, g, 1, 1 + i)));
        checkAlive();
        const ran = batch.map((b) => b.route.stages.map((s) => s.endLayer - s.startLayer).join(',')).find((x) => x !== label);
        if (split.length === 0 || ran === undefined) {
          batches.push(batch);
          break;
        }
        // A run that lost a node mid-way was replayed on fewer nodes: it does not measure this split.
        if (attempt >= WARMUP_ATTEMPTS) throw new BenchClusterError(`split ${label}: runs keep ending on ${ran} (a node keeps leaving; see the node logs)`);
        progress.status(`split ${label}: a run ended on ${ran} (a node was briefly lost); again`);
        await client.waitForMembers(split.length, 60_000, checkAlive);
      }
      progress.tick(`split ${label}: ${c} in flight, run ${r + 1}/${runs}`);
    }
    out.set(c, batches);
  }
  return out;
}

function rowsOf(split: number[], measured: Map<number, BenchResponse[][]>, info: BenchInfo, p: number, g: number): BenchRow[] {
  const rows: BenchRow[] = [];
  let alone: number[] | undefined;
  for (const [c, batches] of measured) {
    const actual = batches[0][0].route.stages.map((s) => s.endLayer - s.startLayer);
    if (actual.join(',') !== split.join(',')) throw new Error(`asked for split ${split.join(',')} but the cluster ran ${actual.join(',')}`);
    let prediction: BenchRow['predicted'] = null;
    let note: string | undefined;
    try {
      prediction = predictSplit(info.modelShape, info.cluster, split, p, g, c);
    } catch (err) {
      note = `no prediction: ${(err as Error).message}`;
    }
    const row = pipelineRow({ split, concurrency: c, batches, ...(c > 1 && alone ? { transferAlone: alone } : {}) }, info.cluster, prediction);
    if (note) row.note = note;
    if (c === 1) alone = row.hops.map((h) => h.transferMs);
    rows.push(row);
  }
  return rows;
}

export const benchCommand: CliCommand = {
  name: 'bench',
  async run(argv) {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        allowNegative: true,
        options: {
          model: { type: 'string' },
          nodes: { type: 'string' },
          api: { type: 'string' },
          'api-key': { type: 'string' },
          splits: { type: 'string' },
          strategy: { type: 'string' },
          'prompt-tokens': { type: 'string' },
          'gen-tokens': { type: 'string' },
          concurrency: { type: 'string' },
          runs: { type: 'string' },
          baseline: { type: 'string', multiple: true },
          'llama-threads': { type: 'string' },
          local: { type: 'boolean' },
          'prefix-cache': { type: 'boolean' },
          ...ENGINE_FLAG_OPTIONS,
          json: { type: 'string' },
          plot: { type: 'string' },
          markdown: { type: 'boolean' },
          'cache-dir': { type: 'string' },
          'synthetic-tokenizer': { type: 'string' },
          'log-dir': { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      });
    } catch (err) {
      throw new UsageError(`${(err as Error).message}\n\n${HELP}`);
    }
    const v = parsed.values;
    if (v.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if ((v.nodes === undefined) === (v.api === undefined)) throw new UsageError(`give exactly one of --nodes N or --api URL\n\n${HELP}`);
    if (v.nodes !== undefined && v.model === undefined) throw new UsageError('--nodes needs --model PATH (the model the nodes load)');
    const nodes = v.nodes === undefined ? 0 : positive(v.nodes, '--nodes', 1);
    if (nodes > 9) throw new UsageError('--nodes goes up to 9 on one machine');
    const p = positive(v['prompt-tokens'], '--prompt-tokens', 128);
    const g = positive(v['gen-tokens'], '--gen-tokens', 64);
    if (g < 2) throw new UsageError('--gen-tokens must be at least 2 (decode needs a step after the first token)');
    const runs = positive(v.runs, '--runs', 3);
    const concurrency = [...new Set((v.concurrency ?? '1').split(',').map((x) => positive(x.trim(), '--concurrency', 1)))].sort((a, b) => a - b);
    const strategy = v.strategy ?? 'optimal';
    if (strategy !== 'optimal' && strategy !== 'memory-weighted' && strategy !== 'equal') throw new UsageError(`--strategy must be optimal, memory-weighted or equal, got "${strategy}"`);
    const baselines = v.baseline ?? [];
    for (const b of baselines) if (b !== 'llama.cpp') throw new UsageError(`--baseline knows llama.cpp only, got "${b}"`);
    const llamaThreads = positive(v['llama-threads'], '--llama-threads', 1);
    const engine = engineOptionsFrom(v);
    const spec: SplitSpec = v.splits === undefined ? { kind: 'auto' } : parseSplitSpec(v.splits);
    if (v.api !== undefined && v.splits !== undefined) {
      throw new UsageError('--api measures the split the cluster runs now; to compare splits use --nodes N (or restart the coordinator with --split)');
    }
    const log = (line: string) => process.stderr.write(`${line}\n`);
    const modelPath = v.model === undefined ? null : await resolveBenchModel(v.model, { ...(v['cache-dir'] ? { cacheDir: v['cache-dir'] } : {}), ...(v['synthetic-tokenizer'] ? { tokenizerDir: v['synthetic-tokenizer'] } : {}), log });

    let layers = 0;
    let hidden = 0;
    let modelName = '';
    if (modelPath) {
      const m = await openModel(modelPath);
      layers = m.config.numLayers;
      hidden = m.config.hiddenSize;
      modelName = m.config.name;
      await m.close();
    }

    const rows: BenchRow[] = [];
    let info: BenchInfo;
    // Prompt tokens of the measured runs, and those the stages' prefix caches gave them.
    const prefix = { promptTokens: 0, cachedTokens: 0 };
    let lastClient: BenchClient | null = null;
    const tallyPrefix = (measured: Map<number, BenchResponse[][]>) => {
      for (const batches of measured.values()) {
        for (const run of batches.flat().flatMap((b) => b.runs)) {
          prefix.promptTokens += run.promptTokens;
          prefix.cachedTokens += run.cachedTokens ?? 0;
        }
      }
    };
    const wantLocal = v.local !== false && modelPath !== null;
    const baselineSteps = (wantLocal ? 1 : 0) + baselines.length;
    const started = Date.now();
    if (v.api !== undefined) {
      const client = new BenchClient(v.api.replace(/\/+$/, ''), v['api-key'] ?? (process.env.EDGE_NODE_API_KEY || undefined));
      client.prefixCache = v['prefix-cache'] === true;
      lastClient = client;
      info = await client.info();
      layers = info.modelShape.numLayers;
      hidden = info.modelShape.hiddenSize;
      modelName ||= info.modelShape.name ?? info.model;
      const progress = new BenchProgress(1 + runs * concurrency.length + baselineSteps);
      const measured = await measureSplit(client, [], concurrency, p, g, runs, progress, () => {});
      tallyPrefix(measured);
      info = await client.info();
      const first = [...measured.values()][0][0][0];
      const split = first.route.stages.map((s) => s.endLayer - s.startLayer);
      // The prediction puts the coordinator first: true when it is stage 0, as with `edge-node start --split`.
      rows.push(...rowsOf(split, measured, info, p, g));
      await baselinesInto(rows, progress);
      progress.finish();
    } else {
      const maxC = Math.max(...concurrency);
      const firstSpec = spec.kind === 'given' ? spec.splits[0] : [layers];
      const progress0 = new BenchProgress(1);
      progress0.status(`starting ${nodes} node(s)`);
      const cluster = await LocalCluster.start({
        nodes,
        modelPath: modelPath!,
        split: firstSpec,
        contextLength: p + g + 8,
        concurrency: maxC,
        engine,
        prefixCache: v['prefix-cache'] === true,
        ...(v['log-dir'] ? { logDir: v['log-dir'] } : {}),
      });
      let ok = false;
      try {
        info = await cluster.client.info();
        const cl: Cluster = info.cluster;
        const splits = resolveSplits(spec, layers, nodes, () =>
          autoSplits(info.modelShape, cl, { promptTokens: p, genTokens: g, concurrency: 1 }, strategy),
        );
        const progress = new BenchProgress(splits.length * (1 + runs * concurrency.length) + baselineSteps);
        for (const split of splits) {
          progress.status(`split ${split.join(',')}: (re)starting the coordinator`);
          await cluster.setSplit(split);
          const measured = await measureSplit(cluster.client, split, concurrency, p, g, runs, progress, () => cluster.checkAlive());
          tallyPrefix(measured);
          lastClient = cluster.client;
          // Profiles and links as the nodes measure them now (links are re-measured every 15 s).
          info = await cluster.client.info();
          rows.push(...rowsOf(split, measured, info, p, g));
        }
        ok = true;
        await cluster.stop();
        await baselinesInto(rows, progress);
        progress.finish();
      } finally {
        if (!ok) {
          await cluster.stop(true);
          process.stderr.write(`\nnode logs: ${cluster.logDir}\n`);
        }
      }
    }

    async function baselinesInto(out: BenchRow[], progress: BenchProgress): Promise<void> {
      if (wantLocal) {
        progress.status('one node, no network');
        const local = await measureLocal(modelPath!, p, g, runs, engine);
        const r = local.runs;
        const device = info.cluster.devices.find((d) => d.id === info.coordinator) ?? info.cluster.devices[0];
        let prediction: BenchRow['predicted'] = null;
        try {
          prediction = predictSplit(info.modelShape, { devices: [device], links: [], defaultLink: info.cluster.defaultLink }, [layers], p, g, 1);
        } catch {
          prediction = null;
        }
        out.push(
          singleDeviceRow('local', '1 node, no network', layers, 1, {
            promptTokens: p,
            genTokens: g,
            ttftMs: r.map((x) => x.ttftMs),
            prefillTokPerS: r.map((x) => x.prefillTokPerS),
            decodeTokPerS: r.map((x) => x.decodeTokPerS),
            tokenLatencyMs: r.map((x) => x.tokenLatencyMs),
            stepMs: r.flatMap((x) => x.stepMs),
            prefillMs: r.map((x) => x.prefillMs),
          }, prediction),
        );
        progress.tick('one node, no network done');
        if (baselines.includes('llama.cpp')) await llamaInto(out, progress, local.promptIds);
      } else if (baselines.includes('llama.cpp')) {
        await llamaInto(out, progress, null);
      }
    }

    async function llamaInto(out: BenchRow[], progress: BenchProgress, promptIds: number[] | null): Promise<void> {
      progress.status('llama.cpp');
      if (!modelPath || !/\.gguf$/i.test(modelPath) || !promptIds) {
        progress.tick('llama.cpp skipped');
        process.stderr.write(`\nllama.cpp baseline skipped: it needs --model with a GGUF file${modelPath ? ' and the local baseline (no --no-local)' : ''}\n`);
        return;
      }
      let bench;
      try {
        bench = await openLlamaCpp(modelPath, llamaThreads);
      } catch (err) {
        if (!(err instanceof LlamaCppUnavailableError)) throw err;
        progress.tick('llama.cpp unavailable');
        process.stderr.write(`\n${err.message}\n`);
        return;
      }
      try {
        const r = await bench.measure(promptIds, g, runs);
        out.push(
          singleDeviceRow('llama.cpp', `llama.cpp (${llamaThreads} thread${llamaThreads > 1 ? 's' : ''})`, layers, 1, {
            promptTokens: p,
            genTokens: g,
            ttftMs: r.map((x) => x.ttftMs),
            prefillTokPerS: r.map((x) => x.prefillTokPerS),
            decodeTokPerS: r.map((x) => x.decodeTokPerS),
            tokenLatencyMs: r.map((x) => x.decodeMs / x.stepMs.length),
            stepMs: r.flatMap((x) => x.stepMs),
            prefillMs: r.map((x) => x.prefillMs),
          }, null, 'same GGUF, llama.cpp CPU build through node-llama-cpp'),
        );
      } finally {
        await bench.close();
      }
      progress.tick('llama.cpp done');
    }

    const partsErr = rows.map((r) => (Math.abs(r.parts.sumMs - r.tokenLatencyMs) / r.tokenLatencyMs) * 100);
    const predErr = rows.filter((r) => r.kind === 'pipeline' && r.concurrency === 1 && r.errorPct).map((r) => Math.abs(r.errorPct!.tokenLatency));
    const report: BenchReport = {
      model: { path: modelPath, name: modelName, layers, hiddenSize: hidden },
      request: { promptTokens: p, genTokens: g, runs, concurrency },
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', loadAverage: loadavg() },
      mode: v.api !== undefined ? 'api' : 'nodes',
      nodes: v.api !== undefined ? info!.members.length : nodes,
      rows,
      checks: { partsVsWholeMaxPct: Math.max(0, ...partsErr), predictionMaxErrorPct: predErr.length ? Math.max(...predErr) : null },
      prefixCache: { enabled: v['prefix-cache'] === true, ...prefix, coordinator: lastClient?.lastPrefixCache ?? null },
    };
    const title = `${modelPath ? basename(modelPath).replace(/\.gguf$/i, '') : modelName}: where a token's time goes`;
    process.stdout.write(
      `\n${title} — prompt ${p}, gen ${g}, ${runs} run(s) after a warm-up (TTFT and tok/s: medians; ms/token and its parts: means per decode step); ${report.nodes} node(s) on ${report.mode === 'nodes' ? 'loopback' : v.api}; ${((Date.now() - started) / 1000).toFixed(0)} s\n\n`,
    );
    process.stdout.write(formatBenchTable(rows, v.markdown === true));
    const medErr = predErr.length ? median(predErr).toFixed(0) : '—';
    process.stdout.write(
      `\nparts vs whole: at most ${report.checks.partsVsWholeMaxPct.toFixed(1)}% apart; prediction error (ms/token, concurrency 1): ` +
        `median ${medErr}%, at most ${report.checks.predictionMaxErrorPct?.toFixed(0) ?? '—'}%\n`,
    );
    const pc = report.prefixCache.coordinator;
    process.stdout.write(
      `prefix cache${report.prefixCache.enabled ? '' : ' (not used by the measured runs; --prefix-cache to use it)'}: ${prefix.cachedTokens} of ${prefix.promptTokens} prompt tokens of the measured runs taken from the stages' caches` +
        (pc ? `; the coordinator's stage keeps ${pc.stage.blocks} blocks (${(pc.stage.bytes / 2 ** 20).toFixed(1)} of ${(pc.stage.budgetBytes / 2 ** 20).toFixed(0)} MiB), ${pc.stage.hits} hits, ${pc.stage.misses} misses, ${pc.stage.evictedBlocks} evicted\n` : '\n'),
    );
    if (v.json) await writeFile(v.json, `${JSON.stringify(report, null, 2)}\n`);
    if (v.plot) {
      await writeFile(
        v.plot,
        renderBenchSvg(rows, {
          title,
          subtitle: `prompt ${p} tokens, ${g} generated, ${runs} runs after a warm-up (mean per decode step); ${report.machine.cpus} cores; black tick = partitioner's prediction`,
        }),
      );
    }
    return 0;
  },
};
