/**
 * The Q8_0 KV cache (--kv-cache q8_0) against llama.cpp's Q8_0 K and V cache, on small models with heads of 64.
 *
 * What llama.cpp does with such a cache (this build, read in its source):
 *  - it refuses a quantised V cache without flash attention, so it runs here with flash attention on;
 *  - its flash attention quantises each query row to Q8_0 too (the K type's vec_dot operand) and takes q8_0·q8_0 dot
 *    products, where ours keeps the query in f32 and dequantises K in the product;
 *  - it rotates K, Q and V by a 64×64 Walsh-Hadamard matrix before quantising (and the output back) when the head is a
 *    multiple of 64, unless LLAMA_ATTN_ROT_DISABLE=1. We store plain blocks, so the strict comparisons turn the
 *    rotation off; its default is reported for information.
 *
 * So the comparisons are (one synthetic model, seed 5, with F32 weights and with Q8_0 weights):
 *  - F32 weights, first position: attention over one row is that row's value (the weight is exactly 1, the query and
 *    key do not matter), so our logits must equal llama.cpp's within 1e-4 (float sums in another order; seen 2e-6),
 *    which holds only if our V blocks dequantise to llama.cpp's values: the F32 cache's logits differ from llama.cpp's
 *    Q8_0 ones there by ≥ 1e-2 (seen 5.5e-2). (With Q8_0 weights the first position cannot tell the caches apart:
 *    the output projection quantises its input to the very blocks the cache holds.)
 *  - every position after the first: the two engines then differ by llama.cpp's rounding of the query, one of the three
 *    roundings (K, V, query) its Q8_0 cache adds to its F32 cache's logits. Asserted: the root mean square of our
 *    difference from llama.cpp's Q8_0 cache is below that of llama.cpp's Q8_0 cache from its F32 cache (seen: 0.74×
 *    with F32 weights, 0.86× with Q8_0 weights, whose activation quantisation adds flips of its own).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LlamaModel, Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernelRuntime, type KernelRuntime } from '@edge-node/kernels';
import type { KvCacheType } from '../packages/node/src/engine/kv-cache.js';
import { QuantShard } from '../packages/node/src/engine/quant-shard.js';
import { loadShardWeights } from '../packages/node/src/engine/shard-weights.js';
import { openModel } from '../packages/node/src/model/open-model.js';
import { generateSyntheticModel, type SyntheticDType } from '@edge-node/testkit';
import { getLlamaCpp } from './support/llama-cpp.js';

const SHARED = process.env.EDGE_NODE_SHARED_MODELS ?? '/work/shared/models';
/** Fed one token per step (llama.cpp computes batches of ≥ ~16 rows with other kernels). */
const TOKENS = [1, 403, 407, 261, 378, 42, 188, 9, 77, 300, 12, 8, 99, 7, 250, 31, 64, 128, 5, 311, 17, 200, 3, 150];

type LlamaKv = 'F32' | 'Q8_0';

let dir = '';
let runtime: KernelRuntime;
const report: string[] = [];

beforeAll(async () => {
  runtime = await createKernelRuntime({ threads: 1 });
  dir = await mkdtemp(join(tmpdir(), 'kv-q8-llama-'));
});
afterAll(async () => {
  await runtime?.close();
  await rm(dir, { recursive: true, force: true });
  delete process.env.LLAMA_ATTN_ROT_DISABLE;
  if (report.length) console.log(`Q8_0 KV cache vs llama.cpp (${TOKENS.length} positions, one token per step):\n${report.join('\n')}`);
});

/** Our logits after each token, fed one per step. */
async function oursPerStep(path: string, kv: KvCacheType): Promise<Float32Array[]> {
  const model = await openModel(path);
  const shard = new QuantShard(await loadShardWeights(model, { startLayer: 0, endLayer: model.config.numLayers }, runtime), runtime, model.ropeLayout, kv);
  try {
    const cache = shard.createCache(TOKENS.length);
    const out: Float32Array[] = [];
    for (const t of TOKENS) {
      const o = await shard.forward({ kind: 'tokens', tokens: [t] }, cache);
      if (o.kind !== 'logits') throw new Error('expected logits from a whole-model shard');
      out.push(o.logits);
    }
    cache.clear();
    return out;
  } finally {
    shard.dispose();
    await model.close();
  }
}

/** llama.cpp's logits after each token, one per step; `rotate` leaves its Hadamard rotation of a quantised cache on. */
async function llamaPerStep(model: LlamaModel, kv: LlamaKv, vocab: number, rotate = false): Promise<Float32Array[]> {
  // Read by llama.cpp when it builds a context's KV cache (getenv in this process).
  if (rotate) delete process.env.LLAMA_ATTN_ROT_DISABLE;
  else process.env.LLAMA_ATTN_ROT_DISABLE = '1';
  const ctx = await model.createContext({
    contextSize: 256,
    batchSize: 256,
    threads: 1,
    sequences: 1,
    // llama.cpp refuses a quantised V cache without flash attention; with an F32 cache it would cast K and V to F16
    // for flash attention, so the F32 reference runs without it.
    flashAttention: kv === 'Q8_0',
    experimentalKvCacheKeyType: kv,
    experimentalKvCacheValueType: kv,
  });
  try {
    const seq = ctx.getSequence();
    const out: Float32Array[] = [];
    for (const t of TOKENS) {
      const res = await seq.controlledEvaluate([[t as Token, { generateNext: { logits: true } }]]);
      const map = res[0]?.next.logits;
      if (!map) throw new Error('llama.cpp returned no logits');
      const v = new Float32Array(vocab);
      for (const [id, x] of map) v[id] = x;
      out.push(v);
    }
    return out;
  } finally {
    await ctx.dispose();
  }
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
function rmsDiff(a: Float32Array[], b: Float32Array[], from: number): number {
  let sum = 0;
  let n = 0;
  for (let s = from; s < a.length; s++) for (let i = 0; i < a[s].length; i++, n++) sum += (a[s][i] - b[s][i]) ** 2;
  return Math.sqrt(sum / n);
}

describe.each<SyntheticDType>(['F32', 'Q8_0'])('%s weights, 4 heads of 64 (2 KV heads), 2 layers', (dtype) => {
  let path = '';
  let model: LlamaModel;
  let vocab = 0;
  beforeAll(async () => {
    path = (
      await generateSyntheticModel({
        preset: 'tiny-tinyllama',
        config: { hiddenSize: 256, intermediateSize: 768, numHeads: 4, numKvHeads: 2, headDim: 64 },
        numLayers: 2,
        dtype,
        format: 'gguf',
        seed: 5,
        outPath: join(dir, `heads64-${dtype}.gguf`),
      })
    ).path;
    vocab = (await openModel(path).then(async (m) => (await m.close(), m.config))).vocabSize;
    model = await (await getLlamaCpp()).loadModel({ modelPath: path, gpuLayers: 0 });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it("holds llama.cpp's Q8_0 values (first position, F32 weights) and differs from its Q8_0 cache by less than that cache differs from its F32 one", async () => {
    const oursQ8 = await oursPerStep(path, 'q8_0');
    const oursF32 = await oursPerStep(path, 'f32');
    const llamaQ8 = await llamaPerStep(model, 'Q8_0', vocab);
    const llamaF32 = await llamaPerStep(model, 'F32', vocab);
    const llamaQ8Rotated = await llamaPerStep(model, 'Q8_0', vocab, true);

    const engines = Math.max(...oursF32.map((l, s) => maxAbsDiff(l, llamaF32[s])));

    const first = maxAbsDiff(oursQ8[0], llamaQ8[0]);
    const firstF32 = maxAbsDiff(oursF32[0], llamaQ8[0]);
    const later = rmsDiff(oursQ8, llamaQ8, 1);
    const theirs = rmsDiff(llamaQ8, llamaF32, 1);
    const ourCache = rmsDiff(oursQ8, oursF32, 1);
    const rotated = rmsDiff(llamaQ8Rotated, llamaF32, 1);
    report.push(
      `${dtype} weights: F32 caches ${engines.toExponential(1)} apart; first position ours vs llama.cpp Q8_0 ${first.toExponential(1)} (F32 cache vs it ${firstF32.toExponential(1)}); ` +
        `later positions, RMS logit difference: ours vs llama.cpp Q8_0 ${later.toExponential(2)}, llama.cpp Q8_0 vs its F32 ${theirs.toExponential(2)}, ` +
        `ours Q8_0 vs ours F32 ${ourCache.toExponential(2)}; llama.cpp's default (Hadamard-rotated) Q8_0 vs its F32 ${rotated.toExponential(2)}`,
    );
    if (dtype === 'F32') {
      expect(engines).toBeLessThan(1e-4); // so what remains is the caches'
      expect(first).toBeLessThan(1e-4);
      expect(firstF32).toBeGreaterThan(1e-2);
    }
    expect(later).toBeLessThan(theirs);
  });
});

it('llama.cpp refuses a Q8_0 K cache on heads of 8 (stories260K) as edge-node does', async () => {
  const model = await (await getLlamaCpp()).loadModel({ modelPath: join(SHARED, 'stories260k', 'stories260K-Q8_0.gguf'), gpuLayers: 0 });
  try {
    await expect(
      model.createContext({ contextSize: 256, threads: 1, sequences: 1, flashAttention: true, experimentalKvCacheKeyType: 'Q8_0', experimentalKvCacheValueType: 'Q8_0' }),
    ).rejects.toThrow();
  } finally {
    await model.dispose();
  }
});
