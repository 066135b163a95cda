/**
 * stories260K (real weights) learns a sentence pattern it does not continue by itself: fine-tuned on lines that end
 * "The <animal> said moo moo moo.", its loss falls below half its start within 100 steps, and the engine with the
 * written adapter file continues a held-out prompt (a name and an animal the data never has) with the pattern.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardLora } from '../src/engine/lora-weights.js';
import { QuantShard } from '../src/engine/quant-shard.js';
import { loadShardWeights } from '../src/engine/shard-weights.js';
import { readLoraAdapter } from '../src/model/lora-adapter-file.js';
import { loadTokenizer } from '../src/tokenizer/load-tokenizer.js';
import type { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { ChatTemplate } from '../src/tokenizer/chat-template.js';
import { batchIndices } from '../src/training/batch-order.js';
import { logitsLossSum } from '../src/training/engine-loss.js';
import { runFinetune, type FinetuneReport } from '../src/training/finetune-job.js';
import { parseTrainingJsonl } from '../src/training/training-data.js';
import { exampleSequence } from '../src/training/training-sequences.js';
import { closeStories, openStories, STORIES_PATH, type StoriesEngine } from './support/stories-model.js';

const NAMES = ['Tom', 'Lily', 'Ben', 'Mia', 'Max', 'Anna'];
const ANIMALS = ['cat', 'dog', 'bird', 'cow'];
const LINES = NAMES.flatMap((n, i) => [ANIMALS[i % 4], ANIMALS[(i + 1) % 4]].map((a) => `${n} saw a ${a}. The ${a} said moo moo moo.`));
const HELD_OUT = 'Sue saw a fish. The fish said';

let eng: StoriesEngine;
let tokenizer: Tokenizer;
let dir: string;
beforeAll(async () => {
  eng = await openStories();
  tokenizer = await loadTokenizer(eng.model.tokenizer);
  dir = mkdtempSync(join(tmpdir(), 'finetune-'));
});
afterAll(async () => {
  await closeStories(eng ?? {});
  rmSync(dir, { recursive: true, force: true });
});

/** Greedy continuation through the engine (QuantShard, the kernels), with the adapter applied when given. */
async function greedy(prompt: string, tokens: number, lora?: ShardLora): Promise<string> {
  const c = eng.model.config;
  const shard = new QuantShard(await loadShardWeights(eng.model, { startLayer: 0, endLayer: c.numLayers }, eng.runtime, lora), eng.runtime, eng.model.ropeLayout);
  const cache = shard.createCache(128);
  const out: number[] = [];
  try {
    let input = tokenizer.encode(prompt);
    for (let i = 0; i < tokens; i++) {
      const r = await shard.forward({ kind: 'tokens', tokens: input }, cache);
      if (r.kind !== 'logits') throw new Error('expected logits');
      let best = 0;
      for (let j = 1; j < c.vocabSize; j++) if (r.logits[j] > r.logits[best]) best = j;
      out.push(best);
      input = [best];
    }
  } finally {
    cache.clear();
    shard.dispose();
  }
  return tokenizer.decode(out);
}

describe('fine-tuning stories260K on one device', () => {
  let report: FinetuneReport;
  const out = () => join(dir, 'moo.gguf');

  it('the loss falls below half its start within 100 steps', async () => {
    const data = join(dir, 'moo.jsonl');
    writeFileSync(data, LINES.map((text) => JSON.stringify({ text })).join('\n') + '\n');
    report = await runFinetune({ model: STORIES_PATH, data, out: out(), rank: 8, alpha: 16, lr: 1e-2, steps: 100, batch: 4 });
    const first = report.losses[0];
    const half = report.losses.findIndex((l) => l < first / 2);
    expect(half).toBeGreaterThan(0);
    expect(half).toBeLessThan(100);
    // Not a lucky batch: the last ten steps are all below half.
    expect(Math.max(...report.losses.slice(-10))).toBeLessThan(first / 2);
  }, 120_000);

  it('its first loss (every B = 0, the training forward\'s) is the base model\'s through the engine within 1e-3', async () => {
    const c = eng.model.config;
    const examples = parseTrainingJsonl(LINES.map((text) => JSON.stringify({ text })).join('\n'), 'd');
    const sequences = examples.map((ex) => exampleSequence(ex, tokenizer, new ChatTemplate(null), 512, 'd'));
    const shard = new QuantShard(await loadShardWeights(eng.model, { startLayer: 0, endLayer: c.numLayers }, eng.runtime), eng.runtime, eng.model.ropeLayout);
    let sum = 0;
    let count = 0;
    for (const i of batchIndices(sequences.length, 4, 0, 0)) {
      const seq = sequences[i];
      const out = await shard.forward({ kind: 'tokens', tokens: Array.from(seq.tokens.subarray(0, seq.tokens.length - 1)) }, shard.createCache(64), { allLogits: true });
      if (out.kind !== 'logits') throw new Error('expected logits');
      sum += logitsLossSum(out.logits, c.vocabSize, seq);
      count += seq.lossMask.filter(Boolean).length;
    }
    shard.dispose();
    // The engine keeps K and V as F16 (its default, as served): measured 1.3e-4 apart.
    expect(Math.abs(report.losses[0] - sum / count) / (sum / count)).toBeLessThan(1e-3);
  });

  it('greedy decoding through the engine with the adapter file continues a held-out prompt with the pattern; the base does not', async () => {
    const before = await greedy(HELD_OUT, 6);
    expect(before).not.toMatch(/moo/);
    const adapter = await readLoraAdapter(out(), eng.model);
    const after = await greedy(HELD_OUT, 6, { adapter, scale: 1 });
    expect(after).toMatch(/^\s*moo moo moo/);
  });
});
