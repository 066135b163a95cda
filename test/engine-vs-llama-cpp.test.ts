/**
 * The single-device engine against llama.cpp: the same greedy tokens from the same prompt ids.
 *
 * Rules, fixed before looking at any result:
 *  - prompt: the ids of "<s>Once upon a time" ([1, 403, 407, 261, 378]); 48 greedy tokens, EOS ignored;
 *  - synthetic models: seeds 1, 2 and 3 of every case, nothing skipped; three of them also with a 200-token prompt
 *    (a fixed scramble of ids) and 32 greedy tokens;
 *  - llama.cpp runs with an F32 KV cache (its default F16 cache rounds K and V, which flips near-ties at the
 *    1e-3 logit level; that outcome is printed for information, not asserted).
 *
 * Q8_0: the engine multiplies the file's blocks directly with activations quantised per 32 values, as llama.cpp
 * does, so the strict check is against llama.cpp on the same Q8_0 file: prefill logits within 1e-3 (seen: < 1e-5)
 * and at least the first 16 greedy tokens (the issue's bar; most cases match all 48). The dequantised F32 twin (the
 * same weights, float activations) is compared for information.
 */
import { execFileSync } from 'node:child_process';
import { copyFile, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ControlledEvaluateInputItem, LlamaModel, Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernelRuntime, type KernelRuntime } from '@edge-node/kernels';
import { QuantShard } from '../packages/node/src/engine/quant-shard.js';
import { loadShardWeights } from '../packages/node/src/engine/shard-weights.js';
import type { ModelConfig } from '../packages/node/src/model/model-config.js';
import { openModel } from '../packages/node/src/model/open-model.js';
import { generateSyntheticModel, type SyntheticDType, type SyntheticFormat, type SyntheticPresetName } from '@edge-node/testkit';
import { getLlamaCpp } from './support/llama-cpp.js';

const SHARED = process.env.EDGE_NODE_SHARED_MODELS ?? '/work/shared/models';
const PROMPT = [1, 403, 407, 261, 378];
const COUNT = 48;
const SEEDS = [1, 2, 3];

type KvType = 'F16' | 'F32';

let dir = '';
let runtime: KernelRuntime;
const llamaModels = new Map<string, LlamaModel>();
/** Printed at the end: one line per comparison. */
const report: string[] = [];

beforeAll(async () => {
  runtime = await createKernelRuntime({ threads: 1 });
  dir = await mkdtemp(join(tmpdir(), 'engine-vs-llama-'));
});
afterAll(async () => {
  for (const m of llamaModels.values()) await m.dispose();
  await runtime?.close();
  await rm(dir, { recursive: true, force: true });
  if (report.length) console.log(`engine vs llama.cpp (${COUNT} greedy tokens from "<s>Once upon a time"):\n${report.join('\n')}`);
});

function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

/** Our engine: the whole model as one shard, greedy; returns the tokens and the logits each was picked from. */
async function engineGreedy(path: string, prompt: number[], count: number): Promise<{ tokens: number[]; logits: Float32Array[]; config: ModelConfig }> {
  const model = await openModel(path);
  // An F32 KV cache, as llama.cpp runs here (see the rules above).
  const shard = new QuantShard(await loadShardWeights(model, { startLayer: 0, endLayer: model.config.numLayers }, runtime), runtime, model.ropeLayout, 'f32');
  try {
    const cache = shard.createCache(prompt.length + count);
    const tokens: number[] = [];
    const logits: Float32Array[] = [];
    let out = await shard.forward({ kind: 'tokens', tokens: prompt }, cache);
    for (;;) {
      if (out.kind !== 'logits') throw new Error('expected logits from a whole-model shard');
      logits.push(out.logits);
      tokens.push(argmax(out.logits));
      if (tokens.length >= count) break;
      out = await shard.forward({ kind: 'tokens', tokens: [tokens[tokens.length - 1]] }, cache);
    }
    cache.clear();
    return { tokens, logits, config: model.config };
  } finally {
    shard.dispose();
    await model.close();
  }
}

async function llamaModel(path: string): Promise<LlamaModel> {
  let m = llamaModels.get(path);
  if (!m) {
    const llama = await getLlamaCpp();
    m = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
    llamaModels.set(path, m);
  }
  return m;
}

/** llama.cpp with the given KV cache type: the test wrapper fixes it to llama.cpp's default (F16). */
async function withLlamaContext<T>(path: string, kv: KvType, fn: (seq: ReturnType<Awaited<ReturnType<LlamaModel['createContext']>>['getSequence']>) => Promise<T>): Promise<T> {
  const model = await llamaModel(path);
  const ctx = await model.createContext({
    contextSize: 512,
    batchSize: 512,
    threads: 1,
    sequences: 1,
    flashAttention: false,
    experimentalKvCacheKeyType: kv,
    experimentalKvCacheValueType: kv,
  });
  try {
    return await fn(ctx.getSequence());
  } finally {
    await ctx.dispose();
  }
}

async function llamaGreedy(path: string, prompt: number[], count: number, kv: KvType): Promise<number[]> {
  return withLlamaContext(path, kv, async (seq) => {
    const out: number[] = [];
    for await (const token of seq.evaluate(prompt as Token[], { temperature: 0, yieldEogToken: true })) {
      out.push(token);
      if (out.length >= count) break;
    }
    return out;
  });
}

/** llama.cpp's raw logits for the position after `ids`. */
async function llamaLogits(path: string, ids: number[], kv: KvType, vocab: number): Promise<Float32Array> {
  return withLlamaContext(path, kv, async (seq) => {
    const input: ControlledEvaluateInputItem[] = ids.map((id, i) => (i === ids.length - 1 ? [id as Token, { generateNext: { logits: true } }] : (id as Token)));
    const res = await seq.controlledEvaluate(input);
    const map = res[ids.length - 1]?.next.logits;
    if (!map) throw new Error('llama.cpp returned no logits');
    const out = new Float32Array(vocab);
    for (const [id, v] of map) out[id] = v;
    return out;
  });
}

function firstDivergence(a: number[], b: number[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Copies the F32 twin and overwrites every non-F32 tensor of `quantPath` with its dequantised values (read through
 * our reader), giving an F32 GGUF that holds exactly the weights the engine computes with for the quantised file.
 */
async function dequantisedTwin(quantPath: string, f32Path: string, outPath: string): Promise<void> {
  await copyFile(f32Path, outPath);
  const q = await openModel(quantPath);
  const f = await openModel(outPath);
  const handle = await open(outPath, 'r+');
  try {
    for (const [name, info] of f.tensors) {
      const qi = q.tensors.get(name);
      if (!qi) throw new Error(`${quantPath} has no ${name}`);
      expect(qi.shape, name).toEqual(info.shape);
      expect(info.dtype, name).toBe('F32');
      if (qi.dtype === 'F32') continue;
      const data = await q.readTensor(name);
      await handle.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 0, data.byteLength, info.offset);
    }
  } finally {
    await handle.close();
    await q.close();
    await f.close();
  }
}

/** Gap at the first divergence: how far each side prefers its own pick over the other's. */
async function divergenceNote(path: string, ours: { tokens: number[]; logits: Float32Array[] }, theirs: number[], kv: KvType, vocab: number): Promise<string> {
  const d = firstDivergence(ours.tokens, theirs);
  if (d < 0) return `all ${COUNT} match`;
  const a = ours.tokens[d];
  const b = theirs[d];
  const lc = await llamaLogits(path, [...PROMPT, ...theirs.slice(0, d)], kv, vocab);
  const ourGap = ours.logits[d][a] - ours.logits[d][b];
  const theirGap = lc[b] - lc[a];
  return `first divergence at token ${d}: engine ${a} (by ${ourGap.toFixed(4)}), llama.cpp ${b} (by ${theirGap.toFixed(4)})`;
}

interface SynthCase {
  label: string;
  preset: SyntheticPresetName;
  config?: Partial<ModelConfig>;
}

const ARCH_CASES: SynthCase[] = [
  { label: 'llama, tied head, GQA 6/2', preset: 'tiny-smollm2' },
  { label: 'llama, untied head, GQA 8/2', preset: 'tiny-tinyllama' },
  { label: 'llama, llama3 rope_scaling, GQA 8/2', preset: 'tiny-llama-3.2' },
  { label: 'qwen2 (q/k/v bias, NEOX rope), GQA 4/2', preset: 'tiny-qwen2.5' },
  { label: 'llama, untied, headDim 32, MQA 4/1', preset: 'tiny-mistral' },
  // Group sizes 1 (MHA), 4 and 8 (MQA) on one shape (hidden 96, 8 heads of 12).
  { label: 'llama, MHA 8/8', preset: 'tiny-smollm2', config: { numHeads: 8, numKvHeads: 8, headDim: 12 } },
  { label: 'llama, GQA 8/2', preset: 'tiny-smollm2', config: { numHeads: 8, numKvHeads: 2, headDim: 12 } },
  { label: 'llama, MQA 8/1', preset: 'tiny-smollm2', config: { numHeads: 8, numKvHeads: 1, headDim: 12 } },
];

async function synth(c: SynthCase, seed: number, dtype: SyntheticDType, format: SyntheticFormat): Promise<string> {
  const slug = `${c.label.replace(/[^a-z0-9]+/gi, '-')}-${seed}-${dtype}`;
  const outPath = join(dir, format === 'gguf' ? `${slug}.gguf` : `${slug}-hf`);
  const g = await generateSyntheticModel({ preset: c.preset, config: c.config, dtype, format, seed, outPath });
  return g.path;
}

describe('stories260K (real weights)', () => {
  const q8 = join(SHARED, 'stories260k', 'stories260K-Q8_0.gguf');
  const f32 = join(SHARED, 'stories260k', 'stories260K.gguf');

  it('Q8_0: the engine greedy-decodes the same 48 tokens as llama.cpp', async () => {
    const ours = await engineGreedy(q8, PROMPT, COUNT);
    const theirs = await llamaGreedy(q8, PROMPT, COUNT, 'F32');
    report.push(`stories260K Q8_0 vs llama.cpp Q8_0: ${await divergenceNote(q8, ours, theirs, 'F32', ours.config.vocabSize)}`);
    expect(new Set(ours.tokens).size).toBeGreaterThan(16);
    expect(ours.tokens).toEqual(theirs);
  });

  it("Q8_0: the prefill logits equal llama.cpp's on the same file within 1e-3", async () => {
    const ours = await engineGreedy(q8, PROMPT, 1);
    const lc = await llamaLogits(q8, PROMPT, 'F32', ours.config.vocabSize);
    expect(maxAbsDiff(lc, ours.logits[0])).toBeLessThan(1e-3);
  });

  it('F32: the engine greedy-decodes the same 48 tokens as llama.cpp', async () => {
    const ours = await engineGreedy(f32, PROMPT, COUNT);
    expect(await llamaGreedy(f32, PROMPT, COUNT, 'F32')).toEqual(ours.tokens);
  });
});

describe.each(ARCH_CASES)('synthetic $label', (c) => {
  it.each(SEEDS)('F32 GGUF, seed %i: same 48 greedy tokens as llama.cpp', async (seed) => {
    const path = await synth(c, seed, 'F32', 'gguf');
    const ours = await engineGreedy(path, PROMPT, COUNT);
    const theirs = await llamaGreedy(path, PROMPT, COUNT, 'F32');
    const f16kv = await llamaGreedy(path, PROMPT, COUNT, 'F16');
    report.push(
      `${c.label} F32 seed ${seed}: F32 KV ${await divergenceNote(path, ours, theirs, 'F32', ours.config.vocabSize)}; ` +
        `llama.cpp default F16 KV: ${await divergenceNote(path, ours, f16kv, 'F16', ours.config.vocabSize)}`,
    );
    // Random-weight text that repeats one token would make agreement meaningless.
    expect(new Set(ours.tokens).size).toBeGreaterThan(16);
    expect(ours.tokens).toEqual(theirs);
  });

  it.each(SEEDS)('Q8_0 GGUF, seed %i: same tokens and prefill logits as llama.cpp on the same file; the F32 twin reported', async (seed) => {
    const q8 = await synth(c, seed, 'Q8_0', 'gguf');
    const f32 = await synth(c, seed, 'F32', 'gguf');
    const ours = await engineGreedy(q8, PROMPT, COUNT);
    const V = ours.config.vocabSize;

    // Strict: llama.cpp on the same Q8_0 file picks the engine's tokens, and its prefill logits differ only by the
    // order of float sums.
    const theirs = await llamaGreedy(q8, PROMPT, COUNT, 'F32');
    const quant = await llamaLogits(q8, PROMPT, 'F32', V);
    const noise = maxAbsDiff(quant, ours.logits[0]);
    const twin = join(dir, `twin-${seed}-${c.label.replace(/[^a-z0-9]+/gi, '-')}.gguf`);
    await dequantisedTwin(q8, f32, twin);
    const twinTokens = await llamaGreedy(twin, PROMPT, COUNT, 'F32');
    report.push(
      `${c.label} Q8_0 seed ${seed}: vs llama.cpp Q8_0 ${await divergenceNote(q8, ours, theirs, 'F32', V)}, prefill logits within ${noise.toFixed(5)}; ` +
        `vs the F32 twin (float activations): ${firstDivergence(ours.tokens, twinTokens) < 0 ? 'all match' : `first divergence at token ${firstDivergence(ours.tokens, twinTokens)}`}`,
    );
    expect(noise).toBeLessThan(1e-3);
    // Decode sums in a different order from llama.cpp's kernels (and RoPE angles in f64, not f32), so a near-tie late
    // in 48 random-weight tokens may flip (seen: 2 of 24 cases, at tokens 34 and 46, gaps < 0.08): the first 16 must agree.
    const d = firstDivergence(ours.tokens, theirs);
    expect(d < 0 || d >= 16, `diverged at token ${d}`).toBe(true);
  });
});

/**
 * The types published GGUFs use, made by llama.cpp's own quantiser (../shared/tools/llamacpp-quantize.py) from one
 * F32 model whose rows are K-quant sized (hidden 256, FFN 768; a Q4_K_M file then mixes Q4_K, Q6_K and F32
 * tensors). Prefill logits equal llama.cpp's on the same file within 1e-3 (seen: < 4e-6).
 *
 * Greedy tokens: both engines quantise every activation row to 8 bits, and the rows they quantise differ by float
 * rounding (~1e-7, other summation orders). Now and then a value lands so near a rounding boundary that the two
 * round it apart by one step, and these random-weight models carry that into logits ~0.15 apart from then on (seen:
 * prompt [1 403 407 261 378 42 188] of the Q6_K file differs by 0.14, dropping or changing its last token makes it
 * agree to 1e-6 again). So texts part now and then at a close call, which a correct engine cannot avoid. Asserted:
 * every case agrees for 8 tokens and most (2 of 3 prompts per type) for 16; every divergence is reported.
 */
describe('llama.cpp-quantised files (Q4_0, Q4_K_M, Q5_K_M, Q6_K)', () => {
  const LIBDIR = join(process.cwd(), 'node_modules/@node-llama-cpp/linux-x64/bins/linux-x64');
  // Short prompts: llama.cpp computes batches of ≥ ~16 rows with other kernels on this CPU (its logits then differ by ~0.1).
  const PROMPTS = [PROMPT, [1, 300, 301, 302], [1, 42, 7, 99, 300, 12, 8]];
  let f32 = '';
  beforeAll(async () => {
    f32 = (
      await generateSyntheticModel({
        preset: 'tiny-tinyllama',
        config: { hiddenSize: 256, intermediateSize: 768, numHeads: 4, numKvHeads: 2, headDim: 64 },
        numLayers: 4,
        format: 'gguf',
        dtype: 'F32',
        seed: 3,
        outPath: join(dir, 'k256-f32.gguf'),
      })
    ).path;
  });

  it.each(['Q4_0', 'Q4_K_M', 'Q5_K_M', 'Q6_K'])('%s: prefill logits within 1e-3 of llama.cpp; greedy tokens agree for 16 or part at a near-tie', async (type) => {
    const path = join(dir, `k256-${type}.gguf`);
    execFileSync('python3', [join(SHARED, '../tools/llamacpp-quantize.py'), LIBDIR, f32, path, type], { stdio: 'ignore' });
    const agreedFor: number[] = [];
    for (const prompt of PROMPTS) {
      const ours = await engineGreedy(path, prompt, 24);
      const theirs = await llamaGreedy(path, prompt, 24, 'F32');
      const lc = await llamaLogits(path, prompt, 'F32', ours.config.vocabSize);
      const d = firstDivergence(ours.tokens, theirs);
      let theirMargin = 0;
      agreedFor.push(d < 0 ? 24 : d);
      if (d >= 0) {
        // llama.cpp's logits at the divergence, computed as it decodes (one token per step).
        const at = await withLlamaContext(path, 'F32', async (seq) => {
          const ids = [...prompt, ...theirs.slice(0, d)];
          let res = await seq.controlledEvaluate(prompt.map((id, i) => (i === prompt.length - 1 ? [id as Token, { generateNext: { logits: true } }] : (id as Token))));
          for (const id of ids.slice(prompt.length)) res = await seq.controlledEvaluate([[id as Token, { generateNext: { logits: true } }]]);
          return res[res.length - 1]!.next.logits!;
        });
        theirMargin = (at.get(theirs[d] as Token) ?? 0) - (at.get(ours.tokens[d] as Token) ?? 0);
      }
      report.push(
        `${type} (hidden 256), prompt of ${prompt.length}: prefill logits within ${maxAbsDiff(lc, ours.logits[0]).toExponential(1)}; ` +
          (d < 0 ? 'all 24 tokens match' : `first divergence at token ${d}, where llama.cpp prefers its token by ${theirMargin.toFixed(4)}`),
      );
      expect(new Set(ours.tokens).size).toBeGreaterThan(8);
      expect(maxAbsDiff(lc, ours.logits[0])).toBeLessThan(1e-3);
      expect(d < 0 || d >= 8, `${type}: diverged at token ${d}`).toBe(true);
    }
    expect(agreedFor.filter((n) => n >= 16).length, `${type}: tokens agreed for ${agreedFor.join(', ')}`).toBeGreaterThanOrEqual(2);
  });
});

describe('a long prompt (200 positions: KV cache growth, RoPE far from 0)', () => {
  // Token ids 3..511 in a fixed scramble; the same rule for every case.
  const longPrompt = [1, ...Array.from({ length: 199 }, (_, i) => 3 + ((i * 197 + 11) % 509))];
  it.each([ARCH_CASES[0], ARCH_CASES[2], ARCH_CASES[3]].flatMap((c) => SEEDS.map((seed) => ({ ...c, seed }))))(
    '$label, F32, seed $seed: same 32 greedy tokens as llama.cpp',
    async (c) => {
      const path = await synth(c, c.seed, 'F32', 'gguf');
      const ours = await engineGreedy(path, longPrompt, 32);
      const theirs = await llamaGreedy(path, longPrompt, 32, 'F32');
      const d = firstDivergence(ours.tokens, theirs);
      report.push(`${c.label} F32 seed ${c.seed}, 200-token prompt: ${d < 0 ? 'all 32 match' : `first divergence at token ${d}`}`);
      expect(ours.tokens).toEqual(theirs);
    },
  );
});

describe('safetensors twins', () => {
  const twins = ARCH_CASES.slice(0, 5);
  it.each(twins)('$label: the safetensors model gives the same tokens and logits as its GGUF twin', async (c) => {
    const seed = 1;
    const ggufPath = await synth(c, seed, 'F32', 'gguf');
    const hfPath = await synth(c, seed, 'F32', 'safetensors');
    const a = await engineGreedy(ggufPath, PROMPT, COUNT);
    const b = await engineGreedy(hfPath, PROMPT, COUNT);
    expect(b.config.ropeScaling).toEqual(a.config.ropeScaling);
    expect(b.tokens).toEqual(a.tokens);
    let worst = 0;
    for (let i = 0; i < a.logits.length; i++) worst = Math.max(worst, maxAbsDiff(a.logits[i], b.logits[i]));
    expect(worst).toBeLessThan(1e-4);
  });
});
