/**
 * A LoRA adapter in the forward pass (stories260K, F32): B = 0 gives the base model's bits, a random adapter moves
 * the logits by what its scale says, and a row's bits stay independent of its batch and of the stage split.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernelRuntime, type KernelRuntime } from '@edge-node/kernels';
import type { ShardOutput } from '../src/engine/forward-shard.js';
import type { LayerRange } from '../src/engine/layer-range.js';
import type { ShardLora } from '../src/engine/lora-weights.js';
import { QuantShard } from '../src/engine/quant-shard.js';
import { loadShardWeights } from '../src/engine/shard-weights.js';
import { sliceLoraAdapter } from '../src/model/lora-adapter.js';
import type { ModelFile } from '../src/model/model-file.js';
import { randomLoraAdapter } from './support/random-lora.js';
import { closeStories, openStories } from './support/stories-model.js';

let runtime: KernelRuntime;
let model: ModelFile;
beforeAll(async () => ({ runtime, model } = await openStories()));
afterAll(() => closeStories({ runtime, model }));

const ALL = (): LayerRange => ({ startLayer: 0, endLayer: model.config.numLayers });
const shardOf = async (lora?: ShardLora, range = ALL()): Promise<QuantShard> => new QuantShard(await loadShardWeights(model, range, runtime, lora), runtime, model.ropeLayout);
const PROMPT = [1, 403, 407, 261, 378, 365, 291, 9, 40, 77, 120, 300];

function logits(out: ShardOutput): Float32Array {
  if (out.kind !== 'logits') throw new Error('expected logits');
  return out.logits;
}
function hidden(out: ShardOutput): Float32Array {
  if (out.kind !== 'hidden') throw new Error('expected hidden states');
  return out.hidden;
}
const bits = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Every position's logits of PROMPT through the shard, then one decode row. */
async function run(shard: QuantShard): Promise<Float32Array[]> {
  const cache = shard.createCache(64);
  try {
    const prompt = logits(await shard.forward({ kind: 'tokens', tokens: PROMPT }, cache, { allLogits: true }));
    const next = logits(await shard.forward({ kind: 'tokens', tokens: [42] }, cache));
    return [prompt, next];
  } finally {
    cache.clear();
    shard.dispose();
  }
}

describe('LoRA in the forward pass', () => {
  it('with B = 0 gives logits bit-identical to the base model', async () => {
    const base = await run(await shardOf());
    const zero = await run(await shardOf({ adapter: randomLoraAdapter(model, { rank: 8, alpha: 16, seed: 1, zeroB: true }), scale: 1 }));
    expect(bits(zero[0]).equals(bits(base[0]))).toBe(true);
    expect(bits(zero[1]).equals(bits(base[1]))).toBe(true);
  });

  it('moves the logits with a non-zero adapter, more with a larger scale, and deterministically', async () => {
    const adapter = randomLoraAdapter(model, { rank: 4, alpha: 8, seed: 2 });
    const base = await run(await shardOf());
    const one = await run(await shardOf({ adapter, scale: 1 }));
    const again = await run(await shardOf({ adapter, scale: 1 }));
    const double = await run(await shardOf({ adapter, scale: 2 }));
    const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    expect(bits(again[0]).equals(bits(one[0]))).toBe(true);
    expect(maxDiff(one[0], base[0])).toBeGreaterThan(1e-3);
    expect(maxDiff(double[0], base[0])).toBeGreaterThan(maxDiff(one[0], base[0]));
    expect(one[0].every(Number.isFinite)).toBe(true);
  });

  it('gives a request the same bits alone or batched with others', async () => {
    const shard = await shardOf({ adapter: randomLoraAdapter(model, { rank: 8, alpha: 16, seed: 3 }), scale: 1 });
    try {
      const alone = shard.createCache(64);
      const a = logits(await shard.forward({ kind: 'tokens', tokens: PROMPT }, alone, { allLogits: true }));
      alone.clear();
      const caches = [shard.createCache(64), shard.createCache(64), shard.createCache(64)];
      const outs = await shard.forwardBatch([
        { input: { kind: 'tokens', tokens: [1, 5, 6, 7] }, cache: caches[0] },
        { input: { kind: 'tokens', tokens: PROMPT }, cache: caches[1], logits: 'all' },
        { input: { kind: 'tokens', tokens: [1, 99] }, cache: caches[2] },
      ]);
      expect(bits(logits(outs[1])).equals(bits(a))).toBe(true);
      for (const c of caches) c.clear();
    } finally {
      shard.dispose();
    }
  });

  it('gives the same bits on two threads as on one', async () => {
    const lora = { adapter: randomLoraAdapter(model, { rank: 8, alpha: 16, seed: 6 }), scale: 1 };
    const serial = await run(await shardOf(lora));
    const two = await createKernelRuntime({ threads: 2 });
    try {
      const threaded = await run(new QuantShard(await loadShardWeights(model, ALL(), two, lora), two, model.ropeLayout));
      expect(bits(threaded[0]).equals(bits(serial[0]))).toBe(true);
      expect(bits(threaded[1]).equals(bits(serial[1]))).toBe(true);
    } finally {
      await two.close();
    }
  });

  it('gives the same bits on two stages, each with its slice, as on one', async () => {
    const adapter = randomLoraAdapter(model, { rank: 8, alpha: 16, seed: 4 });
    const whole = await run(await shardOf({ adapter, scale: 0.5 }));
    const first = await shardOf({ adapter: sliceLoraAdapter(adapter, 0, 2), scale: 0.5 }, { startLayer: 0, endLayer: 2 });
    const last = await shardOf({ adapter: sliceLoraAdapter(adapter, 2, 5), scale: 0.5 }, { startLayer: 2, endLayer: 5 });
    const c1 = first.createCache(64);
    const c2 = last.createCache(64);
    try {
      const h = hidden(await first.forward({ kind: 'tokens', tokens: PROMPT }, c1));
      const l = logits(await last.forward({ kind: 'hidden', hidden: h, n: PROMPT.length }, c2, { allLogits: true }));
      expect(bits(l).equals(bits(whole[0]))).toBe(true);
    } finally {
      c1.clear();
      c2.clear();
      first.dispose();
      last.dispose();
    }
  });

  it('counts the pairs in the shard’s weight bytes', async () => {
    const adapter = randomLoraAdapter(model, { rank: 8, alpha: 16, seed: 5 });
    const base = await shardOf();
    const adapted = await shardOf({ adapter, scale: 1 });
    const pairBytes = [...adapter.tensors.values()].reduce((s, p) => s + (p.a.length + p.b.length) * 4, 0);
    expect(adapted.weightBytes - base.weightBytes).toBeGreaterThanOrEqual(pairBytes);
    base.dispose();
    adapted.dispose();
  });
});
