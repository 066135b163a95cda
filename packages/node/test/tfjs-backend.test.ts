/**
 * The tfjs backend: the second implementation of ForwardShard, checked against the kernels on stories260K (real
 * weights) and against the float64 reference.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernelRuntime, type KernelRuntime } from '@edge-node/kernels';
import { measureDevice } from '../src/cluster/device-profile.js';
import type { ComputeBackend } from '../src/engine/compute-backend.js';
import { ContextLengthError, ShardInputError, type ForwardShard } from '../src/engine/forward-shard.js';
import { kernelBackend } from '../src/engine/kernel-backend.js';
import { startTfjsBackend } from '../src/engine/tfjs-backend.js';
import { TfjsWeightTypeError } from '../src/engine/tfjs-weight-types.js';
import { openModel } from '../src/model/open-model.js';
import type { ModelFile } from '../src/model/model-file.js';

const MODELS = `${process.env.EDGE_NODE_SHARED_MODELS ?? '/work/shared/models'}/`;
const reference = JSON.parse(readFileSync(`${MODELS}stories260k/reference_outputs.json`, 'utf8')) as {
  prompt_ids_with_bos: number[];
  per_position_top5: [number, number][][];
  greedy_from_bos_ids: number[];
};

let runtime: KernelRuntime;
let kernels: ComputeBackend;
let tfjs: ComputeBackend;
beforeAll(async () => {
  runtime = await createKernelRuntime({ threads: 1 });
  kernels = kernelBackend(runtime, { kvCache: 'f32' });
  tfjs = await startTfjsBackend();
});
afterAll(async () => runtime?.close());

const whole = (model: ModelFile) => ({ startLayer: 0, endLayer: model.config.numLayers });

function logitsOf(out: Awaited<ReturnType<ForwardShard['forward']>>): Float32Array {
  if (out.kind !== 'logits') throw new Error('expected logits');
  return out.logits;
}

/** Greedy decoding from BOS (EOS ignored, as the reference was made): argmax of each step's logits. */
async function greedyFromBos(shard: ForwardShard, count: number): Promise<number[]> {
  const cache = shard.createCache(count + 1);
  const out: number[] = [];
  let token = 1;
  while (out.length < count) {
    const logits = logitsOf(await shard.forward({ kind: 'tokens', tokens: [token] }, cache));
    token = logits.indexOf(Math.max(...logits));
    out.push(token);
  }
  cache.clear();
  return out;
}

describe('the tfjs backend on this machine', () => {
  it('runs on tfjs-backend-wasm (tfjs-node is not installed here) and never on tfjs cpu', () => {
    expect(tfjs.name).toBe('tfjs-wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(tfjs.threads).toBe(1);
    expect(tfjs.kvCache).toBe('f32');
    expect(tfjs.summary).toMatch(/tfjs-node not installed/);
  });

  it('the device profile measures and reports it', async () => {
    const p = await measureDevice({ compute: tfjs, budgetMs: 600 });
    expect(p.backend).toBe('tfjs-wasm');
    expect(p.threads).toBe(1);
    expect(p.gflopsDecode).toBeGreaterThan(0.1);
    expect(p.memBandwidthGBps).toBeGreaterThan(0.1);
    const k = await measureDevice({ runtime, budgetMs: 300 });
    expect(k.backend).toBe('kernels');
  });
});

describe.each([
  ['GGUF F32, interleaved RoPE pairs', `${MODELS}stories260k/stories260K.gguf`],
  ['safetensors, rotate_half RoPE pairs', `${MODELS}stories260k-hf`],
])('stories260K on tfjs (%s)', (_label, path) => {
  let model: ModelFile;
  let t: ForwardShard;
  let k: ForwardShard;
  beforeAll(async () => {
    model = await openModel(path);
    t = await tfjs.loadShard(model, whole(model));
    k = await kernels.loadShard(model, whole(model));
  });
  afterAll(async () => {
    t?.dispose();
    k?.dispose();
    await model?.close();
  });

  it('gives the logits of the kernels (F32 KV cache on both) and of the float64 reference at every prompt position', async () => {
    const tl = logitsOf(await t.forward({ kind: 'tokens', tokens: reference.prompt_ids_with_bos }, t.createCache(64), { allLogits: true }));
    const kl = logitsOf(await k.forward({ kind: 'tokens', tokens: reference.prompt_ids_with_bos }, k.createCache(64), { allLogits: true }));
    expect(tl.length).toBe(kl.length);
    let maxDiff = 0;
    for (let i = 0; i < tl.length; i++) maxDiff = Math.max(maxDiff, Math.abs(tl[i] - kl[i]));
    // Measured 1.8e-5 (GGUF) and 1.1e-5 (safetensors): F32 sums in another order; the logits span -12 to 19.
    expect(maxDiff).toBeLessThan(1e-4);
    const V = model.config.vocabSize;
    reference.per_position_top5.forEach((top, pos) => {
      for (const [id, value] of top) expect(Math.abs(tl[pos * V + id] - value)).toBeLessThan(1e-4);
    });
  });

  it('decodes the same 64 greedy tokens from BOS as the kernels and the reference', async () => {
    const tokens = await greedyFromBos(t, 64);
    expect(tokens).toEqual(await greedyFromBos(k, 64));
    expect(tokens).toEqual(reference.greedy_from_bos_ids.slice(0, 64));
  });
});

describe('TfjsShard as a ForwardShard', () => {
  let model: ModelFile;
  beforeAll(async () => {
    model = await openModel(`${MODELS}stories260k/stories260K.gguf`);
  });
  afterAll(async () => model?.close());

  it('split over stages, batched, or prefilled token by token, a request gets the same logits', async () => {
    const shard = await tfjs.loadShard(model, whole(model));
    const prompt = reference.prompt_ids_with_bos;
    const alone = logitsOf(await shard.forward({ kind: 'tokens', tokens: prompt }, shard.createCache(16)));

    // Stages [0, 2) and [2, 5): hidden states hand over between them.
    const a = await tfjs.loadShard(model, { startLayer: 0, endLayer: 2 });
    const b = await tfjs.loadShard(model, { startLayer: 2, endLayer: model.config.numLayers });
    expect([a.isFirst, a.isLast, b.isFirst, b.isLast]).toEqual([true, false, false, true]);
    const mid = await a.forward({ kind: 'tokens', tokens: prompt }, a.createCache(16));
    if (mid.kind !== 'hidden') throw new Error('a first stage hands on hidden states');
    expect(Array.from(logitsOf(await b.forward({ kind: 'hidden', hidden: mid.hidden, n: mid.n }, b.createCache(16))))).toEqual(Array.from(alone));

    // Batched with another request (run one after another, so the bits cannot depend on the batch).
    const [first, other] = await shard.forwardBatch([
      { input: { kind: 'tokens', tokens: prompt }, cache: shard.createCache(16) },
      { input: { kind: 'tokens', tokens: [1, 42, 43] }, cache: shard.createCache(16), logits: 'all' },
    ]);
    expect(Array.from(logitsOf(first))).toEqual(Array.from(alone));
    expect(other.kind === 'logits' && other.rows).toBe(3);

    // Token by token: the same within F32 rounding (a one-row product sums like a five-row one here, but tfjs
    // does not promise it).
    const cache = shard.createCache(16);
    let last: Float32Array = new Float32Array();
    for (const tok of prompt) last = logitsOf(await shard.forward({ kind: 'tokens', tokens: [tok] }, cache));
    for (let i = 0; i < last.length; i++) expect(Math.abs(last[i] - alone[i])).toBeLessThan(1e-5);

    // A prompt slice without logits still fills the cache.
    const sliced = shard.createCache(16);
    const none = (await shard.forwardBatch([{ input: { kind: 'tokens', tokens: prompt.slice(0, 3) }, cache: sliced, logits: 'none' }]))[0];
    expect(none.kind === 'logits' && none.rows).toBe(0);
    expect(sliced.length).toBe(3);
    const rest = logitsOf(await shard.forward({ kind: 'tokens', tokens: prompt.slice(3) }, sliced));
    for (let i = 0; i < rest.length; i++) expect(Math.abs(rest[i] - alone[i])).toBeLessThan(1e-5);

    // A prompt computed once and copied (n > 1 choices share it): the copy continues exactly as the original.
    const original = shard.createCache(16);
    await shard.forward({ kind: 'tokens', tokens: prompt }, original);
    const copy = shard.createCache(16);
    copy.copyPrefix(original, prompt.length);
    expect(copy.length).toBe(prompt.length);
    expect(copy.bytes()).toBe(original.bytes());
    const next = async (c: typeof copy) => Array.from(logitsOf(await shard.forward({ kind: 'tokens', tokens: [42] }, c)));
    expect(await next(copy)).toEqual(await next(original));
    expect(() => copy.copyPrefix(shard.createCache(16), 1)).toThrow(/cannot copy 1 positions/);
    for (const s of [shard, a, b]) s.dispose();
  });

  it('bad input gets the same clear errors as on the kernels, and frees every tensor it made', async () => {
    const before = tf.memory().numTensors;
    const shard = await tfjs.loadShard(model, whole(model));
    const cache = shard.createCache(4);
    await expect(shard.forward({ kind: 'tokens', tokens: [1, 2, 3, 4, 5] }, cache)).rejects.toThrow(ContextLengthError);
    await expect(shard.forward({ kind: 'tokens', tokens: [1, 512] }, cache)).rejects.toThrow(/outside the vocabulary/);
    await expect(shard.forward({ kind: 'hidden', hidden: new Float32Array(64), n: 1 }, cache)).rejects.toThrow(ShardInputError);
    const k = await kernels.loadShard(model, whole(model));
    await expect(shard.forward({ kind: 'tokens', tokens: [1] }, k.createCache(4))).rejects.toThrow(/not made by this shard/);
    k.dispose();
    const both = shard.createCache(4);
    await expect(shard.forwardBatch([{ input: { kind: 'tokens', tokens: [1] }, cache: both }, { input: { kind: 'tokens', tokens: [2] }, cache: both }])).rejects.toThrow(/twice/);

    await shard.forward({ kind: 'tokens', tokens: [1, 2, 3] }, cache);
    expect(cache.bytes()).toBe(model.config.numLayers * 2 * 3 * model.config.numKvHeads * model.config.headDim * 4);
    cache.clear();
    cache.clear();
    expect(cache.bytes()).toBe(0);
    shard.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses a quantised file before reading it, naming the tensor type and the kernels backend', async () => {
    const q8 = await openModel(`${MODELS}stories260k/stories260K-Q8_0.gguf`);
    try {
      expect(() => tfjs.checkModel(q8)).toThrow(TfjsWeightTypeError);
      await expect(tfjs.loadShard(q8, whole(q8))).rejects.toThrow(/tensor \S+ is Q8_0: the tfjs backend computes only F32, F16 and BF16 weights\. Use the default kernels backend/);
    } finally {
      await q8.close();
    }
  });
});
