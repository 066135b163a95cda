/**
 * Continuous batching: aggregate decode throughput and inter-token latency (p50/p95) at several concurrencies, on one
 * node and through 2 and 3 local nodes, beside llama.cpp serving the same file with the same number of parallel
 * sequences in one context (node-llama-cpp batches them), and beside the simulator's prediction.
 *
 *   npx tsx scripts/bench-batching.ts --model FILE.gguf [--concurrency 1,2,4,8,16] [--splits "16;8,8;6,5,5"]
 *        [--prompt-tokens 32] [--gen-tokens 32] [--threads 1] [--runs 1] [--no-speculation]
 *
 * Unless --no-speculation, a second table sets speculating requests beside plain ones at each concurrency and split:
 * `edge-node bench`'s speculation comparison (a quoting prompt that prompt lookup drafts from, both modes
 * interleaved), with aggregate tok/s of each, tokens per walk and the drafts accepted.
 *
 * edge-node's side is `edge-node bench` (nodes as real processes on loopback, requests through the OpenAI API);
 * llama.cpp's side runs in this process. Two shared cores: look at the load average printed with the figures.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Token } from 'node-llama-cpp';
import { openModel } from '../packages/node/src/model/open-model.js';
import { getLlamaCpp } from '../test/support/llama-cpp.js';

const { values: v } = parseArgs({
  options: {
    model: { type: 'string' },
    concurrency: { type: 'string', default: '1,2,4,8,16' },
    splits: { type: 'string' },
    'prompt-tokens': { type: 'string', default: '32' },
    'gen-tokens': { type: 'string', default: '32' },
    threads: { type: 'string', default: '1' },
    runs: { type: 'string', default: '1' },
    speculation: { type: 'boolean', default: true },
  },
  allowNegative: true,
});
if (!v.model) {
  console.error('usage: npx tsx scripts/bench-batching.ts --model FILE.gguf [--concurrency 1,2,4,8,16] [--splits "16;8,8"]');
  process.exit(2);
}
const model = v.model;
const conc = v.concurrency!.split(',').map(Number);
const promptTokens = Number(v['prompt-tokens']);
const genTokens = Number(v['gen-tokens']);
const threads = Number(v.threads);
const CLI = join(import.meta.dirname, '..', 'packages/cli/bin/edge-node.js');

interface Row {
  engine: string;
  concurrency: number;
  aggregateTokPerS: number;
  p50Ms: number;
  p95Ms: number;
  predictedTokPerS?: number;
}
const rows: Row[] = [];
/** `edge-node bench`'s speculation rows (docs/bench.md), one per split and concurrency. */
interface SpeculationRow {
  label: string;
  concurrency: number;
  offThroughputTokPerS: number;
  onThroughputTokPerS: number;
  offDecodeTokPerS: number;
  onDecodeTokPerS: number;
  tokensPerWalk: number;
  drafted: number;
  accepted: number;
}
const speculation: SpeculationRow[] = [];
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
};

// edge-node: one `edge-node bench` per split, every concurrency.
const opened = await openModel(model);
const layers = opened.config.numLayers;
await opened.close();
const splits = v.splits ?? [[layers], [Math.ceil(layers / 2), Math.floor(layers / 2)], [layers - 2 * Math.floor(layers / 3), Math.floor(layers / 3), Math.floor(layers / 3)]].map((s) => s.join(',')).join(';');
const dir = mkdtempSync(join(tmpdir(), 'bench-batching-'));
for (const split of splits.split(';').map((s) => s.trim())) {
  const nodes = split.split(',').length;
  const json = join(dir, `bench-${nodes}.json`);
  process.stderr.write(`edge-node, split ${split}: `);
  execFileSync(
    process.execPath,
    [CLI, 'bench', '--model', model, '--nodes', String(nodes), '--splits', split, '--concurrency', conc.join(','), '--prompt-tokens', String(promptTokens), '--gen-tokens', String(genTokens), '--runs', v.runs!, '--threads', String(threads), '--no-local', ...(v.speculation ? [] : ['--no-speculation']), '--json', json],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const report = JSON.parse(readFileSync(json, 'utf8')) as {
    rows: { kind: string; concurrency: number; throughputTokPerS: number; tokenLatencyP50Ms: number; tokenLatencyP95Ms: number; predicted: { throughputTokPerS: number } | null }[];
    speculation?: SpeculationRow[];
  };
  speculation.push(...(report.speculation ?? []));
  for (const r of report.rows.filter((x) => x.kind === 'pipeline')) {
    rows.push({ engine: `edge-node ${split}`, concurrency: r.concurrency, aggregateTokPerS: r.throughputTokPerS, p50Ms: r.tokenLatencyP50Ms, p95Ms: r.tokenLatencyP95Ms, ...(r.predicted ? { predictedTokPerS: r.predicted.throughputTokPerS } : {}) });
  }
}

// llama.cpp: c sequences of one context, generating together.
const llama = await getLlamaCpp();
const lm = await llama.loadModel({ modelPath: model, gpuLayers: 0 });
const prompt = Array.from({ length: promptTokens }, (_, i) => (i === 0 ? 1 : 3 + ((i * 37) % 400))) as Token[];
for (const c of conc) {
  const ctx = await lm.createContext({ contextSize: c * (promptTokens + genTokens + 8), batchSize: 512, threads, sequences: c, flashAttention: false });
  const gaps: number[] = [];
  const t0 = performance.now();
  let tokens = 0;
  await Promise.all(
    Array.from({ length: c }, async () => {
      const seq = ctx.getSequence();
      let last = 0;
      let n = 0;
      for await (const _t of seq.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
        const now = performance.now();
        if (n > 0) gaps.push(now - last);
        last = now;
        n++;
        tokens++;
        if (n >= genTokens) break;
      }
    }),
  );
  const ms = performance.now() - t0;
  rows.push({ engine: `llama.cpp (${threads} thread${threads === 1 ? '' : 's'})`, concurrency: c, aggregateTokPerS: (tokens / ms) * 1000, p50Ms: pct(gaps, 0.5), p95Ms: pct(gaps, 0.95) });
  await ctx.dispose();
}
await lm.dispose();

const base = new Map(rows.filter((r) => r.concurrency === 1).map((r) => [r.engine, r.aggregateTokPerS]));
console.log(`\nprompt ${promptTokens}, ${genTokens} tokens each, ${threads} thread(s) per engine; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
console.log('| engine | concurrency | aggregate tok/s | × concurrency 1 | p50 ms | p95 ms | predicted tok/s | error |');
console.log('|---|--:|--:|--:|--:|--:|--:|--:|');
for (const r of rows) {
  const gain = r.aggregateTokPerS / (base.get(r.engine) ?? NaN);
  const err = r.predictedTokPerS ? `${(((r.aggregateTokPerS - r.predictedTokPerS) / r.predictedTokPerS) * 100).toFixed(0)}%` : '';
  console.log(`| ${r.engine} | ${r.concurrency} | ${r.aggregateTokPerS.toFixed(1)} | ${gain.toFixed(2)} | ${r.p50Ms.toFixed(1)} | ${r.p95Ms.toFixed(1)} | ${r.predictedTokPerS?.toFixed(1) ?? ''} | ${err} |`);
}
if (speculation.length > 0) {
  console.log('\nSpeculative decoding beside plain decoding (a quoting prompt that prompt lookup drafts from; greedy; the two modes interleaved):\n');
  console.log('| edge-node split | concurrency | aggregate tok/s plain | speculating | × | one request decode tok/s plain | speculating | tokens/walk | accepted/drafted |');
  console.log('|---|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const r of speculation) {
    const share = r.drafted > 0 ? ` (${((r.accepted / r.drafted) * 100).toFixed(0)}%)` : '';
    console.log(
      `| ${r.label} | ${r.concurrency} | ${r.offThroughputTokPerS.toFixed(1)} | ${r.onThroughputTokPerS.toFixed(1)} | ${(r.onThroughputTokPerS / r.offThroughputTokPerS).toFixed(2)} | ${r.offDecodeTokPerS.toFixed(1)} | ${r.onDecodeTokPerS.toFixed(1)} | ${r.tokensPerWalk.toFixed(2)} | ${r.accepted}/${r.drafted}${share} |`,
    );
  }
}
process.exit(0);
