/**
 * Single-device speed and memory, issue 20's benchmark: edge-node's quantised engine (our WebAssembly kernels, both
 * builds) beside llama.cpp (node-llama-cpp, CPU) and llama.cpp's WebAssembly build (@wllama/wllama in Chromium,
 * scripts/wllama-baseline.ts) on the same GGUF file, with the same threads, in the same run.
 *
 *   npm run bench:engine                                   (every model × type × thread count below)
 *   npm run bench:engine -- --models 300m --types q8_0 --threads 1 --runs 1      (a quick run)
 *
 * Options: --models 300m,1b   --types q8_0,q4_k_m (also q6_k, q4_0, q3_k_m, q2_k)   --threads 1,2   --runs N (median of N, after a warm-up; 3)
 *          --prompt-tokens 128   --gen-tokens 32
 *          --kv-cache f16|f32|q8_0 (ours; llama.cpp keeps F16, its default, for f16 and f32; for q8_0 it keeps Q8_0 K and
 *                                   V, with the flash attention it requires for them and its Hadamard rotation)
 *          --engines ours,simd128,llama,wllama   (ours: the build this runtime chooses, relaxed SIMD on Node ≥ 22;
 *                   simd128: the SIMD128 build forced; wllama: llama.cpp's WebAssembly build in Chromium)
 *
 * Models: random weights of real shapes, '300m' = preset llama-300m (hidden 1024, 16 layers, ~285M parameters) and
 * '1b' = llama-3.2-1b. Each is generated once as F16 with our generator, then quantised by llama.cpp's own quantizer
 * (../shared/tools/llamacpp-quantize.py, llama_model_quantize in node-llama-cpp's libllama), so both engines read a
 * file exactly as llama.cpp writes it. Files are cached in os.tmpdir()/edge-node-bench; the F16 intermediates are
 * deleted once the quantised files exist.
 *
 * Each engine runs in its own child process so its peak RSS is its own. Both are timed at the executor level:
 * prefill = one forward pass of the whole prompt (llama.cpp: one batch), decode = one forward pass per generated
 * token (greedy, EOS ignored); wllama by llama.cpp's own timings in the page, on a prompt text of the same token count
 * (it takes no token ids), its peak RSS the Chromium renderer's. Besides wall-clock rates it prints rates per second of
 * process CPU time (not for wllama, whose completion is one call), which other
 * processes on a shared machine disturb less. The warm-up run (16 prompt tokens, 2 generated) is not counted. Goals (issue
 * 20): decode ≥ 0.9× llama.cpp (floor 0.8×), prefill ≥ 0.5×, peak RSS ≤ 1.2× (file bytes + KV cache bytes),
 * against wllama (same file, same threads) prefill ≥ 4×, decode ≥ 3×, and 2 threads against 1 prefill ≥ 1.8×.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Token } from 'node-llama-cpp';
import { describeWasmFeatures, detectWasmFeatures, KERNEL_ISA_ENV } from '@edge-node/kernels';
// The engine's own modules, not the package index: the index brings libp2p and the rest of the node, ~100 MiB of RSS
// that `edge-node run` does not load and that would be counted as the engine's.
import { parseKvCacheType } from '../packages/node/src/engine/engine-options.js';
import { kvRowBytes, type KvCacheType } from '../packages/node/src/engine/kv-cache.js';

const SELF = fileURLToPath(import.meta.url);
const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const CACHE_DIR = join(tmpdir(), 'edge-node-bench');
const QUANTIZE = process.env.EDGE_NODE_QUANTIZE ?? '/work/shared/tools/llamacpp-quantize.py';
const LLAMA_LIBDIR = join(ROOT, 'node_modules/@node-llama-cpp/linux-x64/bins/linux-x64');

const MODELS = { '300m': 'llama-300m', '1b': 'llama-3.2-1b' } as const;
type ModelKey = keyof typeof MODELS;
const TYPES = { q8_0: 'Q8_0', q4_k_m: 'Q4_K_M', q6_k: 'Q6_K', q4_0: 'Q4_0', q3_k_m: 'Q3_K_M', q2_k: 'Q2_K' } as const;
type TypeKey = keyof typeof TYPES;

/** What a child reports (one JSON line on stdout). */
interface EngineResult {
  engine: string;
  /** Threads asked for, and threads the engine says it computes with. */
  threads: number;
  threadsUsed: number;
  isa?: string;
  prefillTokPerS: number;
  decodeTokPerS: number;
  /** null for wllama: its prefill and decode are one call, so their CPU times are not separable. */
  prefillTokPerCpuS: number | null;
  decodeTokPerCpuS: number | null;
  prefillRuns: number[];
  decodeRuns: number[];
  loadMs: number;
  rssAfterLoadBytes: number | null;
  peakRssBytes: number;
}
type ChildReport = EngineResult | { error: string };

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const peakRss = (): number => process.resourceUsage().maxRSS * 1024;
const cpuMs = (since: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
};
const fmtLoad = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

const modelPath = (m: ModelKey, t: TypeKey | 'f16') => join(CACHE_DIR, `${MODELS[m]}-${t}-seed0.gguf`);

/** Token ids of the prompt: fixed ids from the embedded 512-piece vocab (random weights: any ids do). */
const promptIds = (n: number): number[] => Array.from({ length: n }, (_, i) => 3 + ((i * 37 + 11) % 480));

/** Makes the quantised files that are missing: F16 from our generator, then llama.cpp's quantizer. */
async function ensureModels(models: ModelKey[], types: TypeKey[]): Promise<void> {
  await mkdir(CACHE_DIR, { recursive: true });
  for (const m of models) {
    const missing = types.filter((t) => !existsSync(modelPath(m, t)));
    if (missing.length === 0) continue;
    const f16 = modelPath(m, 'f16');
    if (!existsSync(f16)) {
      const { generateSyntheticModel } = await import('../packages/testkit/src/index.js');
      const partial = `${f16}.partial-${process.pid}`;
      const t0 = performance.now();
      process.stderr.write(`generating ${f16} (preset ${MODELS[m]}, F16)... `);
      try {
        await generateSyntheticModel({ preset: MODELS[m], format: 'gguf', dtype: 'F16', seed: 0, outPath: partial });
        await rename(partial, f16);
      } catch (err) {
        await rm(partial, { force: true });
        throw err;
      }
      process.stderr.write(`${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    }
    for (const t of missing) {
      const out = modelPath(m, t);
      const partial = `${out}.partial-${process.pid}`;
      process.stderr.write(`quantising to ${TYPES[t]} with llama.cpp's quantizer → ${out}\n`);
      const r = spawnSync('python3', [QUANTIZE, LLAMA_LIBDIR, f16, partial, TYPES[t]], { stdio: ['ignore', 'ignore', 'pipe'] });
      if (r.status !== 0) {
        await rm(partial, { force: true });
        throw new Error(`llamacpp-quantize ${TYPES[t]} failed (exit ${r.status}): ${r.stderr?.toString().slice(-2000)}`);
      }
      await rename(partial, out);
    }
    // The F16 file is big (the 1B one is ~2.5 GB) and only an intermediate.
    if (Object.keys(TYPES).every((t) => existsSync(modelPath(m, t as TypeKey)))) await rm(f16, { force: true });
  }
}

/** One measured run: wall-clock and process CPU time of the prefill and of the decode steps. */
interface RunTiming {
  prefillMs: number;
  prefillCpuMs: number;
  decodeMs: number;
  decodeCpuMs: number;
  decodeSteps: number;
}

function summarise(
  base: Pick<EngineResult, 'engine' | 'threads' | 'threadsUsed' | 'isa' | 'loadMs' | 'rssAfterLoadBytes'>,
  prompt: number,
  runs: RunTiming[],
): EngineResult {
  const prefill = runs.map((r) => (prompt / r.prefillMs) * 1000);
  const decode = runs.map((r) => (r.decodeSteps / r.decodeMs) * 1000);
  return {
    ...base,
    prefillTokPerS: median(prefill),
    decodeTokPerS: median(decode),
    prefillTokPerCpuS: median(runs.map((r) => (prompt / r.prefillCpuMs) * 1000)),
    decodeTokPerCpuS: median(runs.map((r) => (r.decodeSteps / r.decodeCpuMs) * 1000)),
    prefillRuns: prefill,
    decodeRuns: decode,
    peakRssBytes: peakRss(),
  };
}

/** edge-node: the executor `edge-node run` uses (one forward pass of the prompt, then one per token). */
async function runOurs(path: string, prompt: number[], genTokens: number, runs: number, threads: number, kvCache: KvCacheType): Promise<EngineResult> {
  const { LocalModel } = await import('../packages/node/src/engine/local-model.js');
  const { GREEDY } = await import('../packages/node/src/engine/sampler.js');
  const t0 = performance.now();
  const model = await LocalModel.open(path, { threads, kvCache, contextLength: prompt.length + genTokens + 8 });
  const loadMs = performance.now() - t0;
  const rssAfterLoadBytes = process.memoryUsage().rss;
  const exec = model.executor;
  const once = async (id: string, n: number, ids = prompt): Promise<RunTiming> => {
    let cpu = process.cpuUsage();
    let t = performance.now();
    let token = await exec.begin({ id, promptTokens: ids, sampling: GREEDY, contextLength: ids.length + n });
    const prefillMs = performance.now() - t;
    const prefillCpuMs = cpuMs(cpu);
    cpu = process.cpuUsage();
    t = performance.now();
    for (let i = 1; i < n; i++) token = await exec.step(id, token);
    const r = { prefillMs, prefillCpuMs, decodeMs: performance.now() - t, decodeCpuMs: cpuMs(cpu), decodeSteps: n - 1 };
    await exec.end(id);
    return r;
  };
  try {
    // Warm-up (first touch of every weight, threads started) on a short prompt: a full one would double the run time.
    await once('warm-up', 2, prompt.slice(0, 16));
    const timings: RunTiming[] = [];
    for (let i = 0; i < runs; i++) timings.push(await once(`run-${i}`, genTokens));
    return summarise(
      { engine: 'edge-node', threads, threadsUsed: model.compute.threads, isa: model.compute.isa, loadMs, rssAfterLoadBytes },
      prompt.length,
      timings,
    );
  } finally {
    await model.close();
  }
}

/**
 * llama.cpp as it ships (F16 KV cache, no flash attention), timed like the engine; with our q8_0 cache, its Q8_0 K and V
 * cache (which it computes only with flash attention).
 */
async function runLlamaCpp(path: string, prompt: number[], genTokens: number, runs: number, threads: number, kvCache: KvCacheType): Promise<EngineResult> {
  const { getLlamaCpp } = await import('../test/support/llama-cpp.js');
  const t0 = performance.now();
  const llama = await getLlamaCpp();
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const loadMs = performance.now() - t0;
  const rssAfterLoadBytes = process.memoryUsage().rss;
  const contextSize = Math.max(256, Math.ceil((prompt.length + genTokens + 8) / 256) * 256);
  const once = async (n: number, ids = prompt as Token[]): Promise<RunTiming> => {
    const q8 = kvCache === 'q8_0';
    const ctx = await model.createContext({
      contextSize,
      batchSize: contextSize,
      threads,
      sequences: 1,
      flashAttention: q8,
      ...(q8 ? { experimentalKvCacheKeyType: 'Q8_0', experimentalKvCacheValueType: 'Q8_0' } : {}),
    });
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
    await once(2, prompt.slice(0, 16) as Token[]);
    const timings: RunTiming[] = [];
    for (let i = 0; i < runs; i++) timings.push(await once(genTokens));
    return summarise({ engine: 'llama.cpp', threads, threadsUsed: threads, loadMs, rssAfterLoadBytes }, prompt.length, timings);
  } finally {
    await model.dispose();
  }
}

/** One engine's figures: ours and llama.cpp in a child process each, wllama in Chromium. */
async function runEngine(engine: EngineKey, common: string[]): Promise<ChildReport> {
  if (engine === 'ours') return child(['--child', 'ours', ...common]);
  if (engine === 'simd128') return child(['--child', 'ours', ...common], { [KERNEL_ISA_ENV]: 'simd128' });
  if (engine === 'llama') return child(['--child', 'llama', ...common]);
  return child(['--child', 'wllama', ...common]);
}

/** llama.cpp's WebAssembly build in Chromium (scripts/wllama-baseline.ts); peak RSS is the renderer's. */
async function runWllama(path: string, promptTokens: number, genTokens: number, runs: number, threads: number): Promise<EngineResult> {
  const { measureWllama } = await import('./wllama-baseline.js');
  const r = await measureWllama({ modelPath: path, threads, promptTokens, genTokens, runs });
  if (r.peakRssBytes === undefined) throw new Error("could not read the Chromium renderer's peak RSS");
  return {
    engine: 'wllama',
    threads,
    threadsUsed: r.threadsUsed,
    isa: `wasm ${r.wllamaVersion}${r.multiThread ? ', pthreads' : ''}`,
    prefillTokPerS: r.prefillTokPerS,
    decodeTokPerS: r.decodeTokPerS,
    prefillTokPerCpuS: null,
    decodeTokPerCpuS: null,
    prefillRuns: r.prefillRuns,
    decodeRuns: r.decodeRuns,
    loadMs: r.fetchMs + r.loadMs,
    rssAfterLoadBytes: null,
    peakRssBytes: r.peakRssBytes,
  };
}

/** Runs one engine in a fresh process (so peak RSS is that engine's alone); a failure is reported, not thrown. */
function child(args: string[], env: Record<string, string> = {}): Promise<ChildReport> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [...process.execArgv, SELF, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', (e) => resolve({ error: e.message }));
    p.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (line.startsWith('{')) return resolve(JSON.parse(line) as ChildReport);
      const why = (err.trim().split('\n').find((l) => /Error|error/.test(l)) ?? err.trim().split('\n').pop() ?? '').slice(0, 200);
      resolve({ error: `exit ${code}: ${why}` });
    });
  });
}

/** The model's KV cache bytes for a context of the given type (K and V per layer). */
async function kvBytes(path: string, positions: number, type: KvCacheType): Promise<number> {
  const { openModel } = await import('../packages/node/src/model/open-model.js');
  const model = await openModel(path);
  try {
    const c = model.config;
    return c.numLayers * 2 * positions * kvRowBytes(type, c.numKvHeads * c.headDim);
  } finally {
    await model.close();
  }
}

const list = <T extends string>(s: string, known: readonly T[], what: string): T[] => {
  const xs = s.split(',').map((x) => x.trim().toLowerCase());
  for (const x of xs) if (!(known as readonly string[]).includes(x)) throw new RangeError(`unknown ${what} "${x}" (known: ${known.join(', ')})`);
  return xs as T[];
};

const ENGINES = ['ours', 'simd128', 'llama', 'wllama'] as const;
type EngineKey = (typeof ENGINES)[number];

interface Row {
  model: ModelKey;
  type: TypeKey;
  threads: number;
  fileBytes: number;
  kvBytes: number;
  results: { engine: EngineKey; report: ChildReport }[];
}

const reportOf = (r: Row, e: EngineKey): ChildReport | undefined => r.results.find((x) => x.engine === e)?.report;

const ok = (r: ChildReport | undefined): r is EngineResult => !!r && !('error' in r);

function printTable(rows: Row[]): void {
  const header = [
    'model',
    'type',
    'thr',
    'engine',
    'prefill t/s',
    'decode t/s',
    'prefill t/CPU-s',
    'decode t/CPU-s',
    'RSS loaded',
    'peak RSS',
    'load s',
    'decode runs',
  ];
  const cells: string[][] = [];
  for (const r of rows) {
    for (const { engine, report: res } of r.results) {
      if (!ok(res)) {
        cells.push([r.model, r.type, String(r.threads), engine, `FAILED: ${res.error}`, '', '', '', '', '', '', '']);
        continue;
      }
      const thr = res.threadsUsed !== res.threads ? `${res.threads} (ran ${res.threadsUsed})` : String(res.threads);
      cells.push([
        r.model,
        r.type,
        thr,
        res.engine + (res.isa ? ` [${res.isa}]` : ''),
        res.prefillTokPerS.toFixed(1),
        res.decodeTokPerS.toFixed(2),
        res.prefillTokPerCpuS?.toFixed(1) ?? '–',
        res.decodeTokPerCpuS?.toFixed(2) ?? '–',
        res.rssAfterLoadBytes === null ? '–' : mib(res.rssAfterLoadBytes),
        mib(res.peakRssBytes),
        (res.loadMs / 1000).toFixed(2),
        res.decodeRuns.map((x) => x.toFixed(1)).join('/'),
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...cells.filter((c) => !c[4].startsWith('FAILED')).map((c) => c[i].length)));
  const line = (c: string[]) =>
    c[4].startsWith('FAILED')
      ? c.slice(0, 4).map((x, i) => x.padEnd(widths[i])).join('  ') + '  ' + c[4]
      : c.map((x, i) => (i < 4 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join('  ');
  console.log('\n' + line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));

  const verdict = (x: number, goal: number, floor?: number) =>
    x >= goal ? 'met' : floor !== undefined && x >= floor ? `below goal ${goal}×, above floor ${floor}×` : `MISSED by ${((1 - x / goal) * 100).toFixed(0)}%`;
  const verdictMax = (x: number, goal: number) => (x <= goal ? 'met' : `MISSED by ${((x / goal - 1) * 100).toFixed(0)}%`);
  console.log('\nedge-node against the goals (wall clock; per CPU-second in brackets):');
  for (const r of rows) {
    const llama = reportOf(r, 'llama');
    const wllama = reportOf(r, 'wllama');
    for (const build of ['ours', 'simd128'] as const) {
      const ours = reportOf(r, build);
      if (!ok(ours)) continue;
      const tag = `${r.model} ${r.type} ${r.threads}t ${ours.isa ?? build}`.padEnd(28);
      const parts: string[] = [];
      if (ok(llama)) {
        const d = ours.decodeTokPerS / llama.decodeTokPerS;
        const p = ours.prefillTokPerS / llama.prefillTokPerS;
        const dc = ours.decodeTokPerCpuS! / llama.decodeTokPerCpuS!;
        const pc = ours.prefillTokPerCpuS! / llama.prefillTokPerCpuS!;
        parts.push(`vs llama.cpp: decode ${d.toFixed(2)}× (${dc.toFixed(2)}×) ${verdict(d, 0.9, 0.8)}; prefill ${p.toFixed(2)}× (${pc.toFixed(2)}×) ${verdict(p, 0.5)}`);
      }
      if (ok(wllama)) {
        const d = ours.decodeTokPerS / wllama.decodeTokPerS;
        const p = ours.prefillTokPerS / wllama.prefillTokPerS;
        parts.push(`vs wllama: decode ${d.toFixed(2)}× ${verdict(d, 3)}; prefill ${p.toFixed(2)}× ${verdict(p, 4)}`);
      }
      const budget = r.fileBytes + r.kvBytes;
      const m = ours.peakRssBytes / budget;
      parts.push(`peak RSS ${m.toFixed(2)}× of file+KV ${mib(budget)} ${verdictMax(m, 1.2)}${ok(llama) ? ` (llama.cpp ${(llama.peakRssBytes / budget).toFixed(2)}×)` : ''}`);
      console.log(`${tag} ${parts.join('; ')}`);
    }
  }
  printThreadScaling(rows, verdict);
}

/**
 * Prefill with 2 threads against 1 (issue 20: ≥ 1.8×), for each model and type run at both, beside llama.cpp's own
 * scaling in the same run: a second core that other work takes shows in both.
 */
function printThreadScaling(rows: Row[], verdict: (x: number, goal: number) => string): void {
  const lines: string[] = [];
  for (const two of rows.filter((r) => r.threads === 2)) {
    const one = rows.find((r) => r.threads === 1 && r.model === two.model && r.type === two.type);
    if (!one) continue;
    const scaling = (e: EngineKey) => {
      const a = reportOf(one, e), b = reportOf(two, e);
      return ok(a) && ok(b) ? { prefill: b.prefillTokPerS / a.prefillTokPerS, decode: b.decodeTokPerS / a.decodeTokPerS, isa: b.isa } : undefined;
    };
    const llama = scaling('llama');
    for (const build of ['ours', 'simd128'] as const) {
      const s = scaling(build);
      if (!s) continue;
      const isa = s.isa ?? build;
      const beside = llama ? ` (llama.cpp ${llama.prefill.toFixed(2)}× / ${llama.decode.toFixed(2)}×)` : '';
      lines.push(`${`${two.model} ${two.type} ${isa}`.padEnd(28)} prefill ${s.prefill.toFixed(2)}× ${verdict(s.prefill, 1.8)}; decode ${s.decode.toFixed(2)}×${beside}`);
    }
  }
  if (lines.length === 0) return;
  console.log('\n2 threads against 1 (wall clock):');
  for (const l of lines) console.log(l);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'string' },
      path: { type: 'string' },
      models: { type: 'string', default: '300m,1b' },
      types: { type: 'string', default: 'q8_0,q4_k_m' },
      threads: { type: 'string', default: '1,2' },
      engines: { type: 'string', default: 'ours,simd128,llama,wllama' },
      runs: { type: 'string', default: '3' },
      'prompt-tokens': { type: 'string', default: '128' },
      'gen-tokens': { type: 'string', default: '32' },
      'kv-cache': { type: 'string', default: 'f16' },
    },
  });
  const runs = Number(values.runs);
  const genTokens = Number(values['gen-tokens']);
  const prompt = promptIds(Number(values['prompt-tokens']));
  const kv = parseKvCacheType(values['kv-cache']!);

  if (values.child) {
    const threads = Number(values.threads);
    let report: ChildReport;
    try {
      if (values.child === 'wllama' && kv !== 'f16') throw new Error(`not run: wllama is measured with llama.cpp's F16 KV cache only (asked ${kv})`);
      report =
        values.child === 'ours'
          ? await runOurs(values.path!, prompt, genTokens, runs, threads, kv)
          : values.child === 'wllama'
            ? await runWllama(values.path!, prompt.length, genTokens, runs, threads)
            : await runLlamaCpp(values.path!, prompt, genTokens, runs, threads, kv);
    } catch (err) {
      report = { error: (err as Error).message.split('\n')[0] };
    }
    process.stdout.write(JSON.stringify(report) + '\n');
    return;
  }

  const models = list(values.models!, Object.keys(MODELS) as ModelKey[], 'model');
  const types = list(values.types!, Object.keys(TYPES) as TypeKey[], 'type');
  const engines = list(values.engines!, ENGINES, 'engine');
  const threadCounts = values.threads!.split(',').map(Number);
  if (threadCounts.some((t) => !Number.isInteger(t) || t < 1)) throw new RangeError(`--threads takes whole numbers ≥ 1, e.g. 1,2`);

  await ensureModels(models, types);
  const loadBefore = fmtLoad();
  console.log(`prompt ${prompt.length} tokens, ${genTokens} generated (EOS ignored), warm-up + median of ${runs}; edge-node KV cache ${kv}, llama.cpp ${kv === 'q8_0' ? 'Q8_0 (flash attention)' : 'F16'}`);
  console.log(`Node ${process.version}; load average before: ${loadBefore} (2 cores; anything above ~0.5 disturbs these figures)`);
  const rows: Row[] = [];
  for (const m of models) {
    for (const t of types) {
      const path = modelPath(m, t);
      const fileBytes = statSync(path).size;
      const kvB = await kvBytes(path, prompt.length + genTokens, kv);
      console.log(`${m} ${t}: ${path} (${mib(fileBytes)}, KV ${mib(kvB)})`);
      for (const threads of threadCounts) {
        const common = ['--path', path, '--threads', String(threads), '--runs', String(runs), '--prompt-tokens', String(prompt.length), '--gen-tokens', String(genTokens), '--kv-cache', kv];
        const results: Row['results'] = [];
        for (const engine of engines) results.push({ engine, report: await runEngine(engine, common) });
        rows.push({ model: m, type: t, threads, fileBytes, kvBytes: kvB, results });
        const brief = (r: ChildReport) => (ok(r) ? `prefill ${r.prefillTokPerS.toFixed(1)} decode ${r.decodeTokPerS.toFixed(2)} tok/s peak ${mib(r.peakRssBytes)}` : r.error);
        console.log(`  ${threads} thread(s): ${results.map((x) => `${x.engine} ${brief(x.report)}`).join(' | ')} | load ${fmtLoad()}`);
      }
    }
  }
  printTable(rows);
  const loadAfter = fmtLoad();
  const isa = rows.map((r) => reportOf(r, 'ours')).find(ok)?.isa;
  console.log(`\nkernel ISA: ${isa ?? 'unknown (edge-node did not run)'} (${describeWasmFeatures(detectWasmFeatures())}); load average before: ${loadBefore}; after: ${loadAfter}`);
  if (Math.max(loadavg()[0], Number(loadBefore.split(' ')[0])) > 1.5) {
    console.log('note: the machine was busy (1-minute load > 1.5 on 2 cores): the wall-clock figures are noisy; rerun when it is quiet');
  }
}

await main();
