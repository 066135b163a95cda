/**
 * An adapter `edge-node finetune` trained (runFinetune, stories260K, real weights) loads in llama.cpp (node-llama-cpp,
 * `createContext({ lora })`) and gives the same greedy continuation as our engine with it: the held-out prompt
 * continued with the pattern the data taught, which neither continues that way without the adapter.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernelRuntime, type KernelRuntime } from '@edge-node/kernels';
import type { ShardLora } from '../packages/node/src/engine/lora-weights.js';
import { QuantShard } from '../packages/node/src/engine/quant-shard.js';
import { loadShardWeights } from '../packages/node/src/engine/shard-weights.js';
import { readLoraAdapter } from '../packages/node/src/model/lora-adapter-file.js';
import type { ModelFile } from '../packages/node/src/model/model-file.js';
import { openModel } from '../packages/node/src/model/open-model.js';
import { loadTokenizer } from '../packages/node/src/tokenizer/load-tokenizer.js';
import { runFinetune } from '../packages/node/src/training/finetune-job.js';
import { loadLlamaCppModel, type LlamaCppModel } from './support/llama-cpp.js';

const STORIES = join(import.meta.dirname, '..', 'packages', 'node', 'models', 'stories260K.gguf');
const NAMES = ['Tom', 'Lily', 'Ben', 'Mia', 'Max', 'Anna'];
const ANIMALS = ['cat', 'dog', 'bird', 'cow'];
const LINES = NAMES.flatMap((n, i) => [ANIMALS[i % 4], ANIMALS[(i + 1) % 4]].map((a) => `${n} saw a ${a}. The ${a} said moo moo moo.`));
const COUNT = 8;

let dir = '';
let runtime: KernelRuntime;
let model: ModelFile;
let llama: LlamaCppModel;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'finetune-vs-llama-'));
  runtime = await createKernelRuntime({ threads: 1 });
  model = await openModel(STORIES);
  llama = await loadLlamaCppModel(STORIES);
});
afterAll(async () => {
  await llama?.close();
  await model?.close();
  await runtime?.close();
  await rm(dir, { recursive: true, force: true });
});

async function engineGreedy(prompt: number[], lora?: ShardLora): Promise<number[]> {
  const shard = new QuantShard(await loadShardWeights(model, { startLayer: 0, endLayer: model.config.numLayers }, runtime, lora), runtime, model.ropeLayout);
  const cache = shard.createCache(prompt.length + COUNT);
  const out: number[] = [];
  try {
    let input = prompt;
    while (out.length < COUNT) {
      const r = await shard.forward({ kind: 'tokens', tokens: input }, cache);
      if (r.kind !== 'logits') throw new Error('expected logits');
      let best = 0;
      for (let j = 1; j < r.logits.length; j++) if (r.logits[j] > r.logits[best]) best = j;
      out.push(best);
      input = [best];
    }
  } finally {
    cache.clear();
    shard.dispose();
  }
  return out;
}

describe('a trained adapter in llama.cpp', () => {
  it('gives the greedy continuation our engine gives with it, the learnt pattern', async () => {
    const data = join(dir, 'moo.jsonl');
    const path = join(dir, 'moo.gguf');
    await writeFile(data, LINES.map((text) => JSON.stringify({ text })).join('\n'));
    await runFinetune({ model: STORIES, data, out: path, rank: 8, alpha: 16, lr: 1e-2, steps: 60, batch: 4, threads: 1 });
    const tokenizer = await loadTokenizer(model.tokenizer);
    const prompt = tokenizer.encode('Sue saw a fish. The fish said');
    const ours = await engineGreedy(prompt, { adapter: await readLoraAdapter(path, model), scale: 1 });
    const theirs = await llama.greedy(prompt, COUNT, { lora: { path, scale: 1 } });
    expect(tokenizer.decode(ours)).toMatch(/^\s*moo moo moo/);
    expect(theirs).toEqual(ours);
    const base = await llama.greedy(prompt, COUNT);
    expect(tokenizer.decode(base)).not.toMatch(/moo/);
  });
});
