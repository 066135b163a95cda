/**
 * An adapter `edge-node finetune` trained (runFinetune, stories260K, real weights) loads in llama.cpp (node-llama-cpp,
 * `createContext({ lora })`) and gives the same greedy continuation as our engine with it: the held-out prompt
 * continued with the pattern the data taught, which neither continues that way without the adapter.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ShardLora } from '../packages/node/src/engine/lora-weights.js';
import { readLoraAdapter } from '../packages/node/src/model/lora-adapter-file.js';
import { loadTokenizer } from '../packages/node/src/tokenizer/load-tokenizer.js';
import { runFinetune } from '../packages/node/src/training/finetune-job.js';
import { STORIES, useStoriesBesideLlamaCpp } from './support/stories-beside-llama-cpp.js';

const NAMES = ['Tom', 'Lily', 'Ben', 'Mia', 'Max', 'Anna'];
const ANIMALS = ['cat', 'dog', 'bird', 'cow'];
const LINES = NAMES.flatMap((n, i) => [ANIMALS[i % 4], ANIMALS[(i + 1) % 4]].map((a) => `${n} saw a ${a}. The ${a} said moo moo moo.`));
const COUNT = 8;

const stories = useStoriesBesideLlamaCpp('finetune-vs-llama-');

async function engineGreedy(prompt: number[], lora?: ShardLora): Promise<number[]> {
  const shard = await stories.shard(lora);
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
    const data = join(stories.dir, 'moo.jsonl');
    const path = join(stories.dir, 'moo.gguf');
    await writeFile(data, LINES.map((text) => JSON.stringify({ text })).join('\n'));
    await runFinetune({ model: STORIES, data, out: path, rank: 8, alpha: 16, lr: 1e-2, steps: 60, batch: 4, threads: 1 });
    const tokenizer = await loadTokenizer(stories.model.tokenizer);
    const prompt = tokenizer.encode('Sue saw a fish. The fish said');
    const ours = await engineGreedy(prompt, { adapter: await readLoraAdapter(path, stories.model), scale: 1 });
    const theirs = await stories.llama.greedy(prompt, COUNT, { lora: { path, scale: 1 } });
    expect(tokenizer.decode(ours)).toMatch(/^\s*moo moo moo/);
    expect(theirs).toEqual(ours);
    const base = await stories.llama.greedy(prompt, COUNT);
    expect(tokenizer.decode(base)).not.toMatch(/moo/);
  });
});
