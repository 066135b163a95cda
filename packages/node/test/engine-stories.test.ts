import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/tf-backend.js';
import { LocalExecutor } from '../src/engine/local-executor.js';
import { GREEDY, Sampler } from '../src/engine/sampler.js';
import { disposeShard, loadShard } from '../src/engine/shard-loader.js';
import { ContextLengthError, TransformerShard } from '../src/engine/transformer-shard.js';
import { openModel } from '../src/model/open-model.js';
import { setJsKernelsEnabled } from '../src/engine/fused-kernels.js';
import type { ModelFile } from '../src/model/model-file.js';

const MODELS = new URL('../../../../shared/models/', import.meta.url).pathname;
const reference = JSON.parse(readFileSync(`${MODELS}stories260k/reference_outputs.json`, 'utf8')) as {
  prompt_ids_with_bos: number[];
  per_position_top5: [number, number][][];
  last_position_logits: number[];
  greedy_from_bos_ids: number[];
};

/** Greedy decoding through the engine from BOS, ignoring EOS, as the reference was made. */
async function greedyFromBos(model: ModelFile, count: number): Promise<number[]> {
  const shard = new TransformerShard(await loadShard(model, { startLayer: 0, endLayer: model.config.numLayers }));
  const exec = new LocalExecutor(shard);
  const out: number[] = [];
  let token = await exec.begin({ id: 'r', promptTokens: [1], sampling: GREEDY, contextLength: count + 1 });
  out.push(token);
  while (out.length < count) {
    token = await exec.step('r', token);
    out.push(token);
  }
  await exec.end('r');
  return out;
}

describe.each([
  ['GGUF F32', `${MODELS}stories260k/stories260K.gguf`],
  ['Hugging Face safetensors', `${MODELS}stories260k-hf`],
])('stories260K engine (%s)', (_label, path) => {
  let model: ModelFile;
  beforeAll(async () => {
    await initBackend('wasm');
    model = await openModel(path);
  });
  afterAll(async () => {
    await model?.close();
  });

  it('gives the reference logits at every position of "<s>Once upon a time" (within 1e-3)', async () => {
    const weights = await loadShard(model, { startLayer: 0, endLayer: model.config.numLayers });
    const shard = new TransformerShard(weights);
    const cache = shard.createCache();
    const out = shard.forward({ kind: 'tokens', tokens: reference.prompt_ids_with_bos }, cache, { allLogits: true });
    expect(out.kind).toBe('logits');
    if (out.kind !== 'logits') return;
    const V = model.config.vocabSize;
    expect(out.rows).toBe(reference.prompt_ids_with_bos.length);
    let maxErr = 0;
    reference.per_position_top5.forEach((top, pos) => {
      for (const [id, value] of top) maxErr = Math.max(maxErr, Math.abs(out.logits[pos * V + id] - value));
    });
    const last = out.logits.subarray((out.rows - 1) * V);
    reference.last_position_logits.forEach((v, id) => (maxErr = Math.max(maxErr, Math.abs(last[id] - v))));
    expect(maxErr).toBeLessThan(1e-3);
    cache.clear();
    disposeShard(weights);
  });

  it('decodes the same 200 greedy tokens from BOS as the reference', async () => {
    expect(await greedyFromBos(model, 200)).toEqual(reference.greedy_from_bos_ids);
  });

  it('prefill in one pass equals feeding the prompt one token at a time', async () => {
    const shard = new TransformerShard(await loadShard(model, { startLayer: 0, endLayer: model.config.numLayers }));
    const batched = shard.createCache();
    const a = shard.forward({ kind: 'tokens', tokens: reference.prompt_ids_with_bos }, batched);
    const stepwise = shard.createCache();
    let b = a;
    for (const t of reference.prompt_ids_with_bos) b = shard.forward({ kind: 'tokens', tokens: [t] }, stepwise);
    if (a.kind !== 'logits' || b.kind !== 'logits') throw new Error('expected logits');
    let maxErr = 0;
    for (let i = 0; i < a.logits.length; i++) maxErr = Math.max(maxErr, Math.abs(a.logits[i] - b.logits[i]));
    expect(maxErr).toBeLessThan(1e-4);
    expect(batched.length).toBe(stepwise.length);
  });
});

describe('stories260K pipeline shards', () => {
  let model: ModelFile;
  beforeAll(async () => {
    await initBackend('wasm');
    model = await openModel(`${MODELS}stories260k/stories260K.gguf`);
  });
  afterAll(async () => model?.close());

  it('splitting the layers over stages gives the same logits as one shard', async () => {
    const L = model.config.numLayers;
    const whole = new TransformerShard(await loadShard(model, { startLayer: 0, endLayer: L }));
    const ref = whole.forward({ kind: 'tokens', tokens: reference.prompt_ids_with_bos }, whole.createCache());
    for (const cuts of [[2], [1, 3], [1, 2, 4]]) {
      const bounds = [0, ...cuts, L];
      const stages: TransformerShard[] = [];
      for (let i = 0; i + 1 < bounds.length; i++) stages.push(new TransformerShard(await loadShard(model, { startLayer: bounds[i], endLayer: bounds[i + 1] })));
      let out = stages[0].forward({ kind: 'tokens', tokens: reference.prompt_ids_with_bos }, stages[0].createCache());
      for (const stage of stages.slice(1)) {
        if (out.kind !== 'hidden') throw new Error('a middle stage must output hidden states');
        out = stage.forward({ kind: 'hidden', hidden: out.hidden, n: out.n }, stage.createCache());
      }
      if (out.kind !== 'logits' || ref.kind !== 'logits') throw new Error('expected logits');
      expect(Array.from(out.logits)).toEqual(Array.from(ref.logits));
      expect(stages[0].isFirst && !stages[0].isLast).toBe(true);
    }
  });

  it('the stock-op path (what tfjs-node runs) gives the same logits as the fused kernels', async () => {
    const shard = new TransformerShard(await loadShard(model, { startLayer: 0, endLayer: model.config.numLayers }));
    const prompt = reference.prompt_ids_with_bos;
    const run = () => {
      const cache = shard.createCache();
      const a = shard.forward({ kind: 'tokens', tokens: prompt }, cache, { allLogits: true });
      const b = shard.forward({ kind: 'tokens', tokens: [42] }, cache);
      if (a.kind !== 'logits' || b.kind !== 'logits') throw new Error('expected logits');
      return [...a.logits, ...b.logits];
    };
    const fused = run();
    setJsKernelsEnabled(false);
    try {
      const stock = run();
      let maxErr = 0;
      for (let i = 0; i < fused.length; i++) maxErr = Math.max(maxErr, Math.abs(fused[i] - stock[i]));
      expect(maxErr).toBeLessThan(1e-4);
    } finally {
      setJsKernelsEnabled(true);
    }
  });

  it('refuses to run past the context limit with a clear error', async () => {
    const shard = new TransformerShard(await loadShard(model, { startLayer: 0, endLayer: model.config.numLayers }));
    const cache = shard.createCache(4);
    expect(() => shard.forward({ kind: 'tokens', tokens: [1, 2, 3, 4, 5] }, cache)).toThrow(ContextLengthError);
    expect(() => shard.forward({ kind: 'tokens', tokens: [1, 2, 3, 4, 5] }, cache)).toThrow(/context limit is 4 tokens/);
  });

  it('same seed gives the same sampled tokens; another seed differs', async () => {
    const shard = new TransformerShard(await loadShard(model, { startLayer: 0, endLayer: model.config.numLayers }));
    const exec = new LocalExecutor(shard);
    const run = async (seed: number) => {
      const sampling = { ...GREEDY, temperature: 1.0, topK: 0, topP: 1, minP: 0, seed };
      const out: number[] = [];
      let t = await exec.begin({ id: `s${seed}`, promptTokens: [1], sampling, contextLength: 64 });
      out.push(t);
      while (out.length < 40) out.push((t = await exec.step(`s${seed}`, t)));
      await exec.end(`s${seed}`);
      return out;
    };
    const a = await run(7);
    expect(await run(7)).toEqual(a);
    expect(await run(8)).not.toEqual(a);
    expect(new Sampler(GREEDY).params.temperature).toBe(0);
  });
});
