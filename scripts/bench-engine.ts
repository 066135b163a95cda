/**
 * Single-device speed: edge-node's engine (tfjs wasm, one thread) against llama.cpp (node-llama-cpp, 1 and 2
 * threads) on the same SmolLM2-135M-shaped F32 GGUF (random weights, the real SmolLM2 tokenizer).
 *
 *   npm run bench:engine                     (= tsx scripts/bench-engine.ts)
 *   npm run bench:engine -- --runs 5 --prompt-tokens 128 --gen-tokens 64
 *
 * Each engine runs in its own child process so its peak RSS is its own. Per engine: one warm-up run, then the
 * median of `--runs` runs of a 128-token prefill and 64 greedy tokens (EOS ignored). The model is generated once
 * and cached in os.tmpdir(). Two shared cores: check the load average printed at the top and bottom.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const SHARED = process.env.EDGE_NODE_SHARED_MODELS ?? '/work/shared/models';
const TOKENIZER_DIR = join(SHARED, 'smollm2-135m-instruct-tokenizer');
const MODEL_PATH = join(tmpdir(), 'edge-node-bench', 'smollm2-135m-f32-seed0.gguf');
const SELF = fileURLToPath(import.meta.url);

/** What a child reports (one JSON line on stdout). */
interface EngineResult {
  engine: string;
  threads: number;
  prefillTokPerS: number;
  decodeTokPerS: number;
  /** Every measured run, for the spread. */
  prefillRuns: number[];
  decodeRuns: number[];
  loadMs: number;
  /** RSS once the weights are loaded, before any token is computed. */
  rssAfterLoadBytes: number;
  peakRssBytes: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

/** A text long enough for any prompt length; cut to exactly N token ids. */
async function promptIds(n: number): Promise<number[]> {
  const { openModel } = await import('../packages/node/src/model/open-model.js');
  const { loadTokenizer } = await import('../packages/node/src/tokenizer/load-tokenizer.js');
  const model = await openModel(MODEL_PATH);
  try {
    const tok = await loadTokenizer(model.tokenizer);
    const text =
      'The quick brown fox jumps over the lazy dog while the committee reviews the quarterly budget, ' +
      'and a small robot in the corner hums a tune about rivers, mountains, prime numbers and 3.14159. ';
    const ids = tok.encode(text.repeat(Math.ceil(n / 20) + 2), { addBos: false });
    if (ids.length < n) throw new Error(`the prompt text gave only ${ids.length} tokens`);
    return ids.slice(0, n);
  } finally {
    await model.close();
  }
}

async function ensureModel(): Promise<void> {
  if (existsSync(MODEL_PATH)) return;
  const { generateSyntheticModel } = await import('../packages/node/src/synth/synthetic-model.js');
  await mkdir(join(tmpdir(), 'edge-node-bench'), { recursive: true });
  const partial = `${MODEL_PATH}.partial-${process.pid}`;
  const t0 = performance.now();
  process.stderr.write(`generating ${MODEL_PATH} (SmolLM2-135M shape, F32, SmolLM2 tokenizer)... `);
  try {
    await generateSyntheticModel({ preset: 'smollm2-135m', format: 'gguf', dtype: 'F32', seed: 0, tokenizerDir: TOKENIZER_DIR, outPath: partial });
    await rename(partial, MODEL_PATH);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  process.stderr.write(`${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

async function runOurs(prompt: number[], genTokens: number, runs: number): Promise<EngineResult> {
  const { LocalModel } = await import('../packages/node/src/engine/local-model.js');
  const { GREEDY } = await import('../packages/node/src/engine/sampler.js');
  const t0 = performance.now();
  const model = await LocalModel.open(MODEL_PATH, { backend: 'wasm', contextLength: prompt.length + genTokens + 8 });
  const loadMs = performance.now() - t0;
  const rssAfterLoadBytes = process.memoryUsage().rss;
  try {
    const once = (p: number[], n: number) => model.generate({ prompt: p, addBos: false, maxTokens: n, sampling: GREEDY, ignoreEos: true });
    // Warm-up: the first matMul of each weight packs it inside the wasm backend; the first prefill compiles paths.
    await once(prompt, 8);
    const prefill: number[] = [];
    const decode: number[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await once(prompt, genTokens);
      if (r.tokens.length !== genTokens) throw new Error(`generated ${r.tokens.length} tokens, expected ${genTokens}`);
      prefill.push(r.timings.prefillTokPerS);
      decode.push(r.timings.decodeTokPerS);
    }
    return {
      engine: `edge-node (tfjs ${model.backend.name})`,
      threads: 1,
      prefillTokPerS: median(prefill),
      decodeTokPerS: median(decode),
      prefillRuns: prefill,
      decodeRuns: decode,
      loadMs,
      rssAfterLoadBytes,
      peakRssBytes: peakRss(),
    };
  } finally {
    await model.close();
  }
}

async function runLlamaCpp(prompt: number[], genTokens: number, runs: number, threads: number): Promise<EngineResult> {
  const { loadLlamaCppModel } = await import('../test/support/llama-cpp.js');
  const t0 = performance.now();
  const model = await loadLlamaCppModel(MODEL_PATH);
  const loadMs = performance.now() - t0;
  const rssAfterLoadBytes = process.memoryUsage().rss;
  try {
    // measureSpeed warms up itself too (one token, outside its timings); this run also faults in the mapped file.
    await model.measureSpeed(prompt, 8, { threads });
    const prefill: number[] = [];
    const decode: number[] = [];
    for (let i = 0; i < runs; i++) {
      const s = await model.measureSpeed(prompt, genTokens, { threads });
      if (s.decodeTokens !== genTokens) throw new Error(`llama.cpp generated ${s.decodeTokens} tokens, expected ${genTokens}`);
      prefill.push(s.prefillTokensPerSecond);
      decode.push(s.decodeTokensPerSecond);
    }
    return {
      engine: 'llama.cpp (node-llama-cpp, CPU)',
      threads,
      prefillTokPerS: median(prefill),
      decodeTokPerS: median(decode),
      prefillRuns: prefill,
      decodeRuns: decode,
      loadMs,
      rssAfterLoadBytes,
      peakRssBytes: peakRss(),
    };
  } finally {
    await model.close();
  }
}

/** Runs one engine in a fresh process (so peak RSS is that engine's alone) and returns its report. */
function child(args: string[]): Promise<EngineResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...process.execArgv, SELF, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{')) return reject(new Error(`benchmark child ${args.join(' ')} failed (exit ${code}): ${out}`));
      resolve(JSON.parse(line) as EngineResult);
    });
  });
}

const fmtLoad = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'string' },
      threads: { type: 'string', default: '1' },
      prompt: { type: 'string' },
      runs: { type: 'string', default: '3' },
      'prompt-tokens': { type: 'string', default: '128' },
      'gen-tokens': { type: 'string', default: '64' },
    },
  });
  const runs = Number(values.runs);
  const genTokens = Number(values['gen-tokens']);

  if (values.child) {
    const prompt = JSON.parse(values.prompt ?? '[]') as number[];
    const result =
      values.child === 'ours' ? await runOurs(prompt, genTokens, runs) : await runLlamaCpp(prompt, genTokens, runs, Number(values.threads));
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }

  await ensureModel();
  const prompt = await promptIds(Number(values['prompt-tokens']));
  const loadBefore = fmtLoad();
  console.log(`model: ${MODEL_PATH}`);
  console.log(`prompt ${prompt.length} tokens, ${genTokens} generated (EOS ignored), warm-up + median of ${runs}; load average before: ${loadBefore}`);
  const common = ['--prompt', JSON.stringify(prompt), '--runs', String(runs), '--gen-tokens', String(genTokens)];
  const results: EngineResult[] = [];
  results.push(await child(['--child', 'ours', ...common]));
  results.push(await child(['--child', 'llama', '--threads', '1', ...common]));
  results.push(await child(['--child', 'llama', '--threads', '2', ...common]));

  const rows = results.map((r) => [
    r.engine,
    String(r.threads),
    r.prefillTokPerS.toFixed(1),
    r.decodeTokPerS.toFixed(1),
    `${(r.rssAfterLoadBytes / 2 ** 20).toFixed(0)} MiB`,
    `${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
    `${(r.loadMs / 1000).toFixed(2)} s`,
    r.decodeRuns.map((x) => x.toFixed(1)).join('/'),
  ]);
  const header = ['engine', 'threads', 'prefill tok/s', 'decode tok/s', 'RSS loaded', 'peak RSS', 'load', 'decode runs'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log('\n' + line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  const [ours, l1, l2] = results;
  console.log(
    `\nedge-node / llama.cpp 1 thread:  prefill ${(ours.prefillTokPerS / l1.prefillTokPerS).toFixed(2)}x, decode ${(ours.decodeTokPerS / l1.decodeTokPerS).toFixed(2)}x, peak RSS ${(ours.peakRssBytes / l1.peakRssBytes).toFixed(2)}x`,
  );
  console.log(`edge-node / llama.cpp 2 threads: prefill ${(ours.prefillTokPerS / l2.prefillTokPerS).toFixed(2)}x, decode ${(ours.decodeTokPerS / l2.decodeTokPerS).toFixed(2)}x`);
  const loadAfter = fmtLoad();
  console.log(`load average before: ${loadBefore}; after: ${loadAfter}`);
  if (Math.max(...loadavg().slice(0, 1), Number(loadBefore.split(' ')[0])) > 1.5) {
    console.log('note: the machine was busy (1-minute load > 1.5 on 2 cores); the figures are pessimistic — rerun when it is quiet');
  }
}

await main();
