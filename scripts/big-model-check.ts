/**
 * Issue 11's big-model checks (a script, not a test: the files are ~5 GB each).
 *
 *   npm run check:big-model                            (both parts; = tsx scripts/big-model-check.ts)
 *   npx tsx scripts/big-model-check.ts --part a --tokens 16 --threads 2
 *   npx tsx scripts/big-model-check.ts --part a --file-a other.gguf      (any file; the default is made when missing)
 *
 * (a) One node holds more than 4 GiB of weights: a Llama-3-8B-shaped Q8_0 file with 20 layers (hidden 4096, FFN 14336,
 *     32 heads / 8 KV heads, vocab 128256; ~5.7 GB) loads into several kernel arenas (WebAssembly memories) and its
 *     greedy tokens are compared with llama.cpp's on the same file (both with an F16 KV cache, or --kv f32). Where they differ, the
 *     logit gaps say why: ours (top-1 minus top-2 at that step) and llama.cpp's under teacher forcing (its logit for
 *     its own choice minus its logit for ours, with our tokens as the context). Reports load time, RSS and tok/s.
 * (b) Three local `edge-node start` processes (loopback, --no-mdns, --bootstrap, --split) serve a
 *     Llama-3.1-8B-shaped Q4_K_M file (~4.9 GB, made by llama.cpp's quantizer) together; the answer to a greedy
 *     request must equal the single-node answer (same kernels: exact) or llama.cpp's greedy tokens on the same file
 *     (compared as text, decoded with our tokenizer); both comparisons are printed.
 *
 * Models: random weights with the SmolLM2 tokenizer padded to Llama 3's 128256 entries (so most generated tokens
 * decode to text and the text comparison of (b) means something), cached in os.tmpdir()/edge-node-bench. Each engine
 * runs in its own child process so the RSS figures are its own.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const SELF = fileURLToPath(import.meta.url);
const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const CACHE_DIR = join(tmpdir(), 'edge-node-bench');
const SHARED = process.env.EDGE_NODE_SHARED_MODELS ?? '/work/shared/models';
const TOKENIZER_DIR = join(SHARED, 'smollm2-135m-instruct-tokenizer');
const QUANTIZE = process.env.EDGE_NODE_QUANTIZE ?? '/work/shared/tools/llamacpp-quantize.py';
const LLAMA_LIBDIR = join(ROOT, 'node_modules/@node-llama-cpp/linux-x64/bins/linux-x64');
let Q8_20L = join(CACHE_DIR, 'llama-3-8b-20l-q8_0-seed0.gguf');
let Q4KM_31 = join(CACHE_DIR, 'llama-3.1-8b-q4_k_m-seed0.gguf');
const PROMPT_TEXT = 'Once upon a time, in a small village by the sea, there lived an old fisherman who';

/** KV cache type of both engines (--kv): llama.cpp's default F16, or F32 to take its rounding of Q and K·Q out. */
let KV: 'f16' | 'f32' = 'f16';
const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

/** Writes a synthetic model with our generator (Q8_0 directly: no 16 GB F16 intermediate). */
async function generate(out: string, preset: 'llama-3-8b' | 'llama-3.1-8b', layers?: number): Promise<void> {
  const { generateSyntheticModel } = await import('../packages/testkit/src/index.js');
  await mkdir(CACHE_DIR, { recursive: true });
  const partial = `${out}.partial-${process.pid}`;
  const t0 = performance.now();
  process.stderr.write(`generating ${out} (preset ${preset}${layers ? `, ${layers} layers` : ''}, Q8_0)... `);
  try {
    await generateSyntheticModel({ preset, ...(layers ? { numLayers: layers } : {}), format: 'gguf', dtype: 'Q8_0', seed: 0, tokenizerDir: TOKENIZER_DIR, outPath: partial });
    await rename(partial, out);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  process.stderr.write(`${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
}

async function ensureQ8(): Promise<void> {
  if (!existsSync(Q8_20L)) await generate(Q8_20L, 'llama-3-8b', 20);
}

/** The Q4_K_M file: our Q8_0 file requantised by llama.cpp's quantizer (it allows requantising), then the Q8_0 deleted. */
async function ensureQ4KM(): Promise<void> {
  if (existsSync(Q4KM_31)) return;
  const q8 = join(CACHE_DIR, 'llama-3.1-8b-q8_0-seed0.gguf');
  if (!existsSync(q8)) await generate(q8, 'llama-3.1-8b');
  const partial = `${Q4KM_31}.partial-${process.pid}`;
  process.stderr.write(`quantising to Q4_K_M with llama.cpp's quantizer → ${Q4KM_31}\n`);
  const r = spawnSync('python3', [QUANTIZE, LLAMA_LIBDIR, q8, partial, 'Q4_K_M'], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) {
    await rm(partial, { force: true });
    throw new Error(`llamacpp-quantize Q4_K_M failed (exit ${r.status}): ${r.stderr?.toString().slice(-2000)}`);
  }
  await rename(partial, Q4KM_31);
  await rm(q8, { force: true });
}

/** Prompt token ids from our tokenizer (BOS first when the model asks for it, as llama.cpp does for a raw prompt). */
async function promptIds(path: string): Promise<number[]> {
  const { openModel } = await import('../packages/node/src/model/open-model.js');
  const { loadTokenizer } = await import('../packages/node/src/tokenizer/load-tokenizer.js');
  const model = await openModel(path);
  try {
    const tok = await loadTokenizer(model.tokenizer);
    return tok.encode(PROMPT_TEXT, { addBos: model.config.addBosToken });
  } finally {
    await model.close();
  }
}

async function decodeText(path: string, ids: number[]): Promise<string> {
  return (await decodeTokens(path, ids)).text;
}

/** The text of `ids`, and how many of them decode to nothing on their own (padding entries of the vocab). */
async function decodeTokens(path: string, ids: number[]): Promise<{ text: string; silent: number }> {
  const { openModel } = await import('../packages/node/src/model/open-model.js');
  const { loadTokenizer } = await import('../packages/node/src/tokenizer/load-tokenizer.js');
  const model = await openModel(path);
  try {
    const tok = await loadTokenizer(model.tokenizer);
    return { text: tok.decode(ids), silent: ids.filter((id) => tok.decode([id]) === '').length };
  } finally {
    await model.close();
  }
}

// ---------------------------------------------------------------------------------------------------- children

interface OursReport {
  tokens: number[];
  /** Our top-1 minus top-2 logit at each step. */
  gaps: number[];
  /** Log-probability of each chosen token (log-softmax of the logits). */
  logprobs: number[];
  arenas: number;
  weightBytes: number;
  threads: number;
  isa: string;
  loadMs: number;
  rssAfterLoadBytes: number;
  peakRssBytes: number;
  prefillMs: number;
  decodeTokPerS: number;
}

function top2(logits: Float32Array): { best: number; gap: number } {
  let a = -Infinity;
  let b = -Infinity;
  let best = 0;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > a) {
      b = a;
      a = v;
      best = i;
    } else if (v > b) b = v;
  }
  return { best, gap: a - b };
}

/** edge-node on one node: the whole model in this process, greedy, with the logits of every step. */
async function childOurs(path: string, prompt: number[], n: number, threads: number, kv: 'f16' | 'f32', dump?: string): Promise<OursReport> {
  const { createKernelRuntime } = await import('@edge-node/kernels');
  const { openModel } = await import('../packages/node/src/model/open-model.js');
  const { loadShardWeights } = await import('../packages/node/src/engine/shard-weights.js');
  const { QuantShard } = await import('../packages/node/src/engine/quant-shard.js');
  const t0 = performance.now();
  const runtime = await createKernelRuntime({ threads });
  const model = await openModel(path);
  const weights = await loadShardWeights(model, { startLayer: 0, endLayer: model.config.numLayers }, runtime);
  const shard = new QuantShard(weights, runtime, model.ropeLayout, kv);
  const loadMs = performance.now() - t0;
  const rssAfterLoadBytes = process.memoryUsage().rss;
  try {
    const cache = shard.createCache(prompt.length + n + 1);
    const tokens: number[] = [];
    const gaps: number[] = [];
    const logprobs: number[] = [];
    let t = performance.now();
    let out = await shard.forward({ kind: 'tokens', tokens: prompt }, cache);
    const prefillMs = performance.now() - t;
    t = performance.now();
    for (let i = 0; i < n; i++) {
      if (out.kind !== 'logits') throw new Error('the last stage returned no logits');
      if (i === 0 && dump) writeFileSync(dump, new Uint8Array(out.logits.buffer, out.logits.byteOffset, out.logits.byteLength));
      const { best, gap } = top2(out.logits);
      tokens.push(best);
      gaps.push(gap);
      let sum = 0;
      const top = out.logits[best];
      for (let j = 0; j < out.logits.length; j++) sum += Math.exp(out.logits[j] - top);
      logprobs.push(-Math.log(sum));
      if (i + 1 < n) out = await shard.forward({ kind: 'tokens', tokens: [best] }, cache);
    }
    const decodeMs = performance.now() - t;
    return {
      tokens,
      gaps,
      logprobs,
      arenas: weights.arenas.length,
      weightBytes: shard.weightBytes,
      threads: runtime.threads,
      isa: runtime.isa,
      loadMs,
      rssAfterLoadBytes,
      peakRssBytes: peakRss(),
      prefillMs,
      decodeTokPerS: ((n - 1) / decodeMs) * 1000,
    };
  } finally {
    shard.dispose();
    await model.close();
    await runtime.close();
  }
}

interface LlamaReport {
  tokens: number[];
  /** With our tokens as context (teacher forcing): llama.cpp's argmax per step and its logit margin over our token. */
  forcedArgmax: number[];
  forcedMargin: number[];
  loadMs: number;
  peakRssBytes: number;
  decodeTokPerS: number;
}

async function childLlama(path: string, prompt: number[], n: number, threads: number, ours: number[], kv: 'f16' | 'f32', dump?: string): Promise<LlamaReport> {
  const { loadLlamaCppModel } = await import('../test/support/llama-cpp.js');
  const t0 = performance.now();
  const llama = await loadLlamaCppModel(path);
  const loadMs = performance.now() - t0;
  try {
    const opts = { threads, kvCacheType: kv === 'f16' ? ('F16' as const) : ('F32' as const) };
    const t = performance.now();
    const tokens = await llama.greedy(prompt, n, opts);
    const greedyMs = performance.now() - t;
    const forcedArgmax: number[] = [];
    const forcedMargin: number[] = [];
    if (ours.length > 0) {
      const ctx = [...prompt, ...ours.slice(0, n - 1)];
      const all = await llama.logits(ctx, { ...opts, allPositions: true });
      for (let i = 0; i < ours.length; i++) {
        const l = all[prompt.length - 1 + i];
        if (i === 0 && dump) writeFileSync(dump, new Uint8Array(l.buffer, l.byteOffset, l.byteLength));
        const { best } = top2(l);
        forcedArgmax.push(best);
        forcedMargin.push(l[best] - l[ours[i]]);
      }
    }
    // greedy() includes the prompt's prefill: this rate is a lower bound of llama.cpp's decode rate.
    return { tokens, forcedArgmax, forcedMargin, loadMs, peakRssBytes: peakRss(), decodeTokPerS: (n / greedyMs) * 1000 };
  } finally {
    await llama.close();
  }
}

function child<T>(args: string[]): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(process.execPath, [...process.execArgv, SELF, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{')) return reject(new Error(`child ${args.slice(0, 2).join(' ')} failed (exit ${code}): ${out.slice(-1000)}`));
      resolvePromise(JSON.parse(line) as T);
    });
  });
}

// ---------------------------------------------------------------------------------------------------- part (a)

async function partA(n: number, threads: number): Promise<boolean> {
  await ensureQ8();
  const prompt = await promptIds(Q8_20L);
  const fileBytes = statSync(Q8_20L).size;
  console.log(`\n(a) ${Q8_20L}: ${gib(fileBytes)}, prompt ${prompt.length} tokens, ${n} greedy tokens, ${threads} thread(s), ${KV} KV cache in both`);
  const common = ['--path', Q8_20L, '--prompt', JSON.stringify(prompt), '--tokens', String(n), '--threads', String(threads), '--kv', KV];
  const dumps = [join(CACHE_DIR, `logits-ours-${process.pid}.f32`), join(CACHE_DIR, `logits-llama-${process.pid}.f32`)];
  const ours = await child<OursReport>(['--child', 'ours', ...common, '--dump', dumps[0]]);
  console.log(
    `  edge-node: ${gib(ours.weightBytes)} of weights in ${ours.arenas} arenas; load ${(ours.loadMs / 1000).toFixed(1)} s; ` +
      `RSS after load ${gib(ours.rssAfterLoadBytes)}, peak ${gib(ours.peakRssBytes)} (${(ours.peakRssBytes / fileBytes).toFixed(2)}× the file); ` +
      `prefill ${(ours.prefillMs / 1000).toFixed(1)} s (${((prompt.length / ours.prefillMs) * 1000).toFixed(2)} tok/s), decode ${ours.decodeTokPerS.toFixed(2)} tok/s ` +
      `(${ours.threads} thread(s), ${ours.isa})`,
  );
  const llama = await child<LlamaReport>(['--child', 'llama', ...common, '--ours', JSON.stringify(ours.tokens), '--dump', dumps[1]]);
  const [lo, ll] = dumps.map((f) => new Float32Array(new Uint8Array(readFileSync(f)).buffer));
  await Promise.all(dumps.map((f) => rm(f, { force: true })));
  let maxDiff = 0;
  let sqDiff = 0;
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < ll.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(lo[i] - ll[i]));
    sqDiff += (lo[i] - ll[i]) ** 2;
    sum += ll[i];
    sq += ll[i] * ll[i];
  }
  const sd = Math.sqrt(sq / ll.length - (sum / ll.length) ** 2);
  console.log(`  prefill logits (last prompt position): max |ours − llama.cpp| ${maxDiff.toFixed(4)}, rms ${Math.sqrt(sqDiff / ll.length).toFixed(4)}; llama.cpp's logits have s.d. ${sd.toFixed(3)}`);
  console.log(`  llama.cpp: load ${(llama.loadMs / 1000).toFixed(1)} s; peak RSS ${gib(llama.peakRssBytes)}; prefill+decode ${llama.decodeTokPerS.toFixed(2)} tok/s`);
  console.log(`  edge-node tokens: ${ours.tokens.join(' ')}`);
  console.log(`  llama.cpp tokens: ${llama.tokens.join(' ')}`);
  const firstDiff = ours.tokens.findIndex((t, i) => t !== llama.tokens[i]);
  const same = firstDiff < 0 ? n : firstDiff;
  console.log(`  same greedy tokens: ${same} of ${n}${same >= 16 ? ' — met (≥ 16)' : ' — MISSED (< 16)'}`);
  const forcedAgree = ours.tokens.filter((t, i) => t === llama.forcedArgmax[i]).length;
  console.log(`  with our tokens as context, llama.cpp's argmax equals ours at ${forcedAgree} of ${n} steps`);
  for (let i = 0; i < n; i++) {
    if (ours.tokens[i] === llama.forcedArgmax[i]) continue;
    console.log(
      `    step ${i}: ours ${ours.tokens[i]} (our top-1/top-2 gap ${ours.gaps[i].toFixed(4)}), llama.cpp ${llama.forcedArgmax[i]} ` +
        `(its logit for its choice exceeds its logit for ours by ${llama.forcedMargin[i].toFixed(4)})`,
    );
  }
  console.log(`  smallest gap of ours over the ${n} steps: ${Math.min(...ours.gaps).toFixed(4)}`);
  return same >= 16 || forcedAgree === n;
}

// ---------------------------------------------------------------------------------------------------- part (b)

function vmHwm(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function partB(n: number, threads: number, single: boolean): Promise<boolean> {
  await ensureQ4KM();
  const prompt = await promptIds(Q4KM_31);
  const fileBytes = statSync(Q4KM_31).size;
  console.log(`\n(b) ${Q4KM_31}: ${gib(fileBytes)}, prompt ${prompt.length} tokens, ${n} greedy tokens, 3 nodes × ${threads} thread(s)`);
  const common = ['--path', Q4KM_31, '--prompt', JSON.stringify(prompt), '--tokens', String(n), '--threads', String(threads), '--kv', KV];
  const llama = await child<LlamaReport>(['--child', 'llama', ...common, '--ours', '[]']);
  const { text: refText, silent } = await decodeTokens(Q4KM_31, llama.tokens);
  console.log(
    `  llama.cpp: ${llama.tokens.join(' ')} → ${JSON.stringify(refText)} (peak RSS ${gib(llama.peakRssBytes)}; ` +
      `${silent} of ${n} tokens decode to nothing, so the text comparison with llama.cpp is that much weaker)`,
  );
  let singleText: string | null = null;
  let singleLogprobs: number[] | null = null;
  if (single) {
    const ours = await child<OursReport>(['--child', 'ours', ...common]);
    singleText = await decodeText(Q4KM_31, ours.tokens);
    singleLogprobs = ours.logprobs;
    const same = ours.tokens.findIndex((t, i) => t !== llama.tokens[i]);
    console.log(
      `  edge-node, one node: ${ours.tokens.join(' ')} (${same < 0 ? 'equal to llama.cpp' : `differs from llama.cpp at step ${same}`}); ` +
        `load ${(ours.loadMs / 1000).toFixed(1)} s, peak RSS ${gib(ours.peakRssBytes)}, decode ${ours.decodeTokPerS.toFixed(2)} tok/s, ${ours.arenas} arenas`,
    );
  }

  const { ClusterHarness } = await import('../test/support/cluster-harness.js');
  const h = new ClusterHarness('big-model-check');
  try {
    const { openModel } = await import('../packages/node/src/model/open-model.js');
    const m = await openModel(Q4KM_31);
    const L = m.config.numLayers;
    await m.close();
    const split = [Math.ceil(L / 3), Math.ceil(L / 3), L - 2 * Math.ceil(L / 3)];
    const args = ['--model', Q4KM_31, '--split', split.join(','), '--no-mdns', '--context', '256', '--threads', String(threads), '--kv-cache', KV];
    const t0 = performance.now();
    const a = await h.startNode({ name: 'a', args, timeoutMs: 600_000 });
    const others = await Promise.all(['b', 'c'].map((name) => h.startNode({ name, args: [...args, '--bootstrap', a.addresses[0]], timeoutMs: 600_000 })));
    const nodes = [a, ...others];
    await h.waitForPipelineMembers(nodes, 600_000);
    const readyMs = performance.now() - t0;
    // The first request makes b and c load their layers (ranges come in the request): time it apart from a second one.
    const t1 = performance.now();
    const first = await a.complete({ prompt, max_tokens: n, temperature: 0, ignore_eos: true, logprobs: 0 }, 1_800_000);
    const firstMs = performance.now() - t1;
    const t2 = performance.now();
    const second = await a.complete({ prompt, max_tokens: n, temperature: 0, ignore_eos: true, logprobs: 0 }, 1_800_000);
    const secondMs = performance.now() - t2;
    const plan = ((await a.cluster()) as { plan?: { stages?: { name: string; startLayer: number; endLayer: number }[] } }).plan;
    console.log(`  split ${split.join(',')}; nodes up and members in ${(readyMs / 1000).toFixed(1)} s; plan ${JSON.stringify(plan?.stages?.map((s) => [s.name, s.startLayer, s.endLayer]) ?? null)}`);
    console.log(`  first request ${(firstMs / 1000).toFixed(1)} s (includes loading layers on demand), second ${(secondMs / 1000).toFixed(1)} s = ${((second.usage.completion_tokens / secondMs) * 1000).toFixed(2)} tok/s incl. prefill`);
    console.log(`  peak RSS per node: ${nodes.map((x) => `${x.name} ${gib(vmHwm(x.proc.pid!))}`).join(', ')}`);
    console.log(`  cluster answer: ${JSON.stringify(second.choices[0].text)} (${second.usage.completion_tokens} tokens, ${second.choices[0].finish_reason})`);
    const okLlama = first.choices[0].text === refText && second.choices[0].text === refText;
    // Many synthetic tokens decode to "" (vocab padding): the chosen tokens' log-probabilities tell tokens apart too.
    const lp = (r: typeof first) => (r.choices[0] as { logprobs?: { token_logprobs?: number[] } }).logprobs?.token_logprobs ?? [];
    const lpDiff = (r: typeof first) =>
      singleLogprobs === null || lp(r).length !== singleLogprobs.length ? Infinity : Math.max(...lp(r).map((x, i) => Math.abs(x - singleLogprobs![i])));
    const worstLp = Math.max(lpDiff(first), lpDiff(second));
    console.log(`  cluster token log-probs: ${lp(second).map((x) => x.toFixed(4)).join(' ')}; max |cluster − single node| ${worstLp.toFixed(6)}`);
    const okSingle = singleText !== null && first.choices[0].text === singleText && second.choices[0].text === singleText && worstLp < 1e-3;
    console.log(`  equals llama.cpp's greedy text: ${okLlama ? 'yes' : 'NO'}${singleText === null ? '' : `; equals the single-node answer (text and log-probs within 1e-3): ${okSingle ? 'yes' : 'NO'}`}`);
    // Either reference will do (issue 11): the single node runs the same kernels, so it is the exact one.
    return okLlama || okSingle;
  } finally {
    await h.cleanup();
  }
}

// ---------------------------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'string' },
      path: { type: 'string' },
      prompt: { type: 'string' },
      ours: { type: 'string' },
      part: { type: 'string', default: 'a,b' },
      tokens: { type: 'string', default: '16' },
      threads: { type: 'string', default: '1' },
      'no-single': { type: 'boolean', default: false },
      // Other files for the two parts (e.g. a small one to try the script out).
      'file-a': { type: 'string' },
      kv: { type: 'string', default: 'f16' },
      dump: { type: 'string' },
      'file-b': { type: 'string' },
    },
  });
  if (values['file-a']) Q8_20L = resolve(values['file-a']);
  if (values['file-b']) Q4KM_31 = resolve(values['file-b']);
  const n = Number(values.tokens);
  const kv = values.kv === 'f32' ? 'f32' : 'f16';
  KV = kv;
  const threads = Number(values.threads);
  if (values.child) {
    const prompt = JSON.parse(values.prompt ?? '[]') as number[];
    const report =
      values.child === 'ours'
        ? await childOurs(values.path!, prompt, n, threads, kv, values.dump)
        : await childLlama(values.path!, prompt, n, threads, JSON.parse(values.ours ?? '[]') as number[], kv, values.dump);
    process.stdout.write(JSON.stringify(report) + '\n');
    return;
  }
  const parts = values.part!.split(',');
  console.log(`Node ${process.version}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} (2 shared cores: speed figures are noisy)`);
  let ok = true;
  if (parts.includes('a')) ok = (await partA(n, threads)) && ok;
  if (parts.includes('b')) ok = (await partB(n, threads, !values['no-single'])) && ok;
  console.log(`\nload average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  process.exitCode = ok ? 0 : 1;
}

await main();
