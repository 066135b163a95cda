/**
 * Single-device speed: edge-node's engine (tfjs wasm, one thread) against llama.cpp (node-llama-cpp, 1 and 2
 * threads) on the same SmolLM2-135M-shaped F32 GGUF (random weights, the real SmolLM2 tokenizer).
 *
 *   npm run bench:engine                     (= tsx scripts/bench-engine.ts)
 *   npm run bench:engine -- --runs 5 --prompt-tokens 128 --gen-tokens 64
 *
 * Each engine runs in its own child process so its peak RSS is its own. Per engine: one warm-up run, then the
 * median of `--runs` runs of a 128-token prefill and 64 greedy tokens (EOS ignored). The model is generated once
 * and cached in os.tmpdir(). Both engines are timed at the executor level (one batched prefill, then one forward
 * pass per token; tokenizer and sampling costs are negligible). Besides wall-clock rates it prints rates per
 * second of process CPU time, which other processes on a shared machine disturb much less (for one thread they
 * approach the quiet wall-clock rate; for llama.cpp's two threads they include its spin-waiting). Two shared
 * cores: check the load average printed at the top and bottom.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Token } from 'node-llama-cpp';

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
  /** Tokens per second of process CPU time (all threads): less sensitive to other processes on a busy machine. */
  prefillTokPerCpuS: number;
  decodeTokPerCpuS: number;
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

/** One measured run: wall-clock and process CPU time of the prefill and of the decode steps. */
interface RunTiming {
  prefillMs: number;
  prefillCpuMs: number;
  decodeMs: number;
  decodeCpuMs: number;
  /** Forward passes timed in the decode phase. */
  decodeSteps: number;
}

const cpuMs = (since: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
};

function summarise(engine: string, threads: number, prompt: number, runs: RunTiming[], loadMs: number, rssAfterLoadBytes: number): EngineResult {
  const prefill = runs.map((r) => (prompt / r.prefillMs) * 1000);
  const decode = runs.map((r) => (r.decodeSteps / r.decodeMs) * 1000);
  return {
    engine,
    threads,
    prefillTokPerS: median(prefill),
    decodeTokPerS: median(decode),
    prefillTokPerCpuS: median(runs.map((r) => (prompt / r.prefillCpuMs) * 1000)),
    decodeTokPerCpuS: median(runs.map((r) => (r.decodeSteps / r.decodeCpuMs) * 1000)),
    prefillRuns: prefill,
    decodeRuns: decode,
    loadMs,
    rssAfterLoadBytes,
    peakRssBytes: peakRss(),
  };
}

/**
 * edge-node: the executor that `edge-node run` uses (one batched prefill, then one forward pass per token), timed
 * directly so prefill and decode are separate and CPU time can be read around each.
 */
async function runOurs(prompt: number[], genTokens: number, runs: number): Promise<EngineResult> {
  const { LocalModel } = await import('../packages/node/src/engine/local-model.js');
  const { GREEDY } = await import('../packages/node/src/engine/sampler.js');
  const t0 = performance.now();
  const model = await LocalModel.open(MODEL_PATH, { backend: 'wasm', contextLength: prompt.length + genTokens + 8 });
  const loadMs = performance.now() - t0;
  const rssAfterLoadBytes = process.memoryUsage().rss;
  const exec = model.executor;
  const once = async (id: string, n: number): Promise<RunTiming> => {
    let cpu = process.cpuUsage();
    let t = performance.now();
    let token = await exec.begin({ id, promptTokens: prompt, sampling: GREEDY, contextLength: prompt.length + n });
    const prefillMs = performance.now() - t;
    const prefillCpuMs = cpuMs(cpu);
    cpu = process.cpuUsage();
    t = performance.now();
    // EOS is ignored: the executor knows nothing of it; exactly n tokens come out.
    for (let i = 1; i < n; i++) token = await exec.step(id, token);
    const r = { prefillMs, prefillCpuMs, decodeMs: performance.now() - t, decodeCpuMs: cpuMs(cpu), decodeSteps: n - 1 };
    await exec.end(id);
    return r;
  };
  try {
    // Warm-up: the first matMul of each weight packs it inside the wasm backend.
    await once('warm-up', 8);
    const timings: RunTiming[] = [];
    for (let i = 0; i < runs; i++) timings.push(await once(`run-${i}`, genTokens));
    return summarise(`edge-node (tfjs ${model.backend.name})`, 1, prompt.length, timings, loadMs, rssAfterLoadBytes);
  } finally {
    await model.close();
  }
}

/** llama.cpp as it ships (F16 KV cache, no flash attention), timed like the engine. */
async function runLlamaCpp(prompt: number[], genTokens: number, runs: number, threads: number): Promise<EngineResult> {
  const { getLlamaCpp } = await import('../test/support/llama-cpp.js');
  const t0 = performance.now();
  const llama = await getLlamaCpp();
  const model = await llama.loadModel({ modelPath: MODEL_PATH, gpuLayers: 0 });
  const loadMs = performance.now() - t0;
  const rssAfterLoadBytes = process.memoryUsage().rss;
  const ids = prompt as Token[];
  const once = async (n: number): Promise<RunTiming> => {
    const ctx = await model.createContext({ contextSize: 256, batchSize: 256, threads, sequences: 1, flashAttention: false });
    try {
      const seq = ctx.getSequence();
      let cpu = process.cpuUsage();
      let t = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(ids);
      const prefillMs = performance.now() - t;
      const prefillCpuMs = cpuMs(cpu);
      // Decode: evaluate() re-feeds the last prompt token to get its logits, then one pass per token.
      await seq.eraseContextTokenRanges([{ start: ids.length - 1, end: ids.length }]);
      cpu = process.cpuUsage();
      t = performance.now();
      let generated = 0;
      for await (const _ of seq.evaluate([ids[ids.length - 1]], { temperature: 0, yieldEogToken: true })) {
        if (++generated >= n) break;
      }
      if (generated !== n) throw new Error(`llama.cpp generated ${generated} tokens, expected ${n}`);
      return { prefillMs, prefillCpuMs, decodeMs: performance.now() - t, decodeCpuMs: cpuMs(cpu), decodeSteps: n };
    } finally {
      await ctx.dispose();
    }
  };
  try {
    // Warm-up: faults in the memory-mapped weights and starts the thread pool.
    await once(8);
    const timings: RunTiming[] = [];
    for (let i = 0; i < runs; i++) timings.push(await once(genTokens));
    return summarise('llama.cpp (node-llama-cpp, CPU)', threads, prompt.length, timings, loadMs, rssAfterLoadBytes);
  } finally {
    await model.dispose();
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
    r.prefillTokPerCpuS.toFixed(1),
    r.decodeTokPerCpuS.toFixed(1),
    `${(r.rssAfterLoadBytes / 2 ** 20).toFixed(0)} MiB`,
    `${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
    `${(r.loadMs / 1000).toFixed(2)} s`,
    r.decodeRuns.map((x) => x.toFixed(1)).join('/'),
  ]);
  const header = ['engine', 'threads', 'prefill tok/s', 'decode tok/s', 'prefill tok/CPU-s', 'decode tok/CPU-s', 'RSS loaded', 'peak RSS', 'load', 'decode runs'];
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
  console.log(
    `per CPU-second, edge-node / llama.cpp 1 thread: prefill ${(ours.prefillTokPerCpuS / l1.prefillTokPerCpuS).toFixed(2)}x, decode ${(ours.decodeTokPerCpuS / l1.decodeTokPerCpuS).toFixed(2)}x`,
  );
  const loadAfter = fmtLoad();
  console.log(`load average before: ${loadBefore}; after: ${loadAfter}`);
  if (Math.max(...loadavg().slice(0, 1), Number(loadBefore.split(' ')[0])) > 1.5) {
    console.log('note: the machine was busy (1-minute load > 1.5 on 2 cores); the figures are pessimistic — rerun when it is quiet');
  }
}

await main();
