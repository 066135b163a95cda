import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSyntheticModel, type SyntheticPresetName } from '@edge-node/testkit';
import { loadLlamaCppModel } from './support/llama-cpp.js';

const SHARED = process.env.EDGE_NODE_SHARED_MODELS ?? '/work/shared/models';
const STORIES = join(SHARED, 'stories260k');
const SMOLLM_TOKENIZER = join(SHARED, 'smollm2-135m-instruct-tokenizer');

interface Reference {
  prompt_ids_with_bos: number[];
  last_position_logits: number[];
  per_position_top5: Array<Array<[number, number]>>;
  greedy_from_bos_ids: number[];
}

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'llama-oracle-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

describe('llama.cpp oracle on the real stories260K', () => {
  const ref = JSON.parse(readFileSync(join(STORIES, 'reference_outputs.json'), 'utf8')) as Reference;

  it('greedy-decodes the 200 reference tokens from BOS and matches the float64 logits', async () => {
    const m = await loadLlamaCppModel(join(STORIES, 'stories260K.gguf'));
    try {
      expect(m.bosToken).toBe(1);
      expect(m.addsBos).toBe(true);
      expect(m.tokenize('Once upon a time')).toEqual(ref.prompt_ids_with_bos.slice(1));
      expect(await m.greedy([1], 200)).toEqual(ref.greedy_from_bos_ids);
      const logits = await m.logits(ref.prompt_ids_with_bos);
      expect(logits.length).toBe(512);
      let maxErr = 0;
      for (let i = 0; i < 512; i++) maxErr = Math.max(maxErr, Math.abs(logits[i] - ref.last_position_logits[i]));
      expect(maxErr).toBeLessThan(0.02);
      const perPos = await m.logits(ref.prompt_ids_with_bos, { allPositions: true });
      expect(perPos.map(argmax)).toEqual(ref.per_position_top5.map((top) => top[0][0]));
    } finally {
      await m.close();
    }
  });
});

describe('llama.cpp runs synthetic models of every architecture feature', () => {
  const cases: Array<[SyntheticPresetName, 'F32' | 'Q8_0' | 'F16', string]> = [
    ['tiny-smollm2', 'F32', 'llama, GQA, tied'],
    ['tiny-qwen2.5', 'F32', 'qwen2 with q/k/v bias'],
    ['tiny-llama-3.2', 'F32', 'llama3 rope scaling'],
    ['tiny-tinyllama', 'Q8_0', 'untied head, Q8_0'],
    ['tiny-mistral', 'F16', 'untied head, headDim 32, F16'],
  ];
  for (const [preset, dtype, what] of cases) {
    it(`${preset} (${what}) loads and greedy-decodes 32 varied tokens`, async () => {
      const g = await generateSyntheticModel({ preset, dtype, format: 'gguf', seed: 1, outPath: join(dir, `${preset}.gguf`) });
      const m = await loadLlamaCppModel(g.path);
      try {
        expect(m.vocabSize).toBe(g.config.vocabSize);
        const ids = await m.greedy([1], 32);
        expect(ids.length).toBe(32);
        expect(new Set(ids).size).toBeGreaterThanOrEqual(8);
        // The wrapper's logits agree with its greedy tokens.
        const logits = await m.logits([1, ...ids.slice(0, 3)], { allPositions: true });
        expect(logits.map(argmax)).toEqual(ids.slice(0, 4));
        const sorted = [...logits[3]].sort((a, b) => b - a);
        expect(sorted[0] - sorted[1]).toBeGreaterThan(0);
      } finally {
        await m.close();
      }
    });
  }

  it('a 30-layer tiny model loads, and the built-in vocab tokenizes like stories260K', async () => {
    const g = await generateSyntheticModel({ preset: 'tiny-smollm2', numLayers: 30, format: 'gguf', seed: 2, outPath: join(dir, 'deep.gguf') });
    const m = await loadLlamaCppModel(g.path);
    try {
      expect(m.tokenize('Once upon a time')).toEqual([403, 407, 261, 378]);
      expect(m.detokenize([403, 407, 261, 378])).toBe('Once upon a time');
      expect(new Set(await m.greedy([1], 32)).size).toBeGreaterThanOrEqual(8);
    } finally {
      await m.close();
    }
  });

  it('an embedded SmolLM2 tokenizer tokenizes in llama.cpp exactly as the HF tokenizer does', async () => {
    if (!existsSync(SMOLLM_TOKENIZER)) return expect.fail(`missing ${SMOLLM_TOKENIZER}`);
    const g = await generateSyntheticModel({ preset: 'tiny-smollm2', format: 'gguf', tokenizerDir: SMOLLM_TOKENIZER, outPath: join(dir, 'sm.gguf') });
    const hf = new Tokenizer(JSON.parse(readFileSync(join(SMOLLM_TOKENIZER, 'tokenizer.json'), 'utf8')) as object, {});
    const m = await loadLlamaCppModel(g.path);
    try {
      expect(m.addsBos).toBe(false);
      for (const text of ['Hello, world! 12345 apples', '  The quick brown fox\n\tjumps… über naïve café 3.14', 'def f(x):\n    return x**2']) {
        expect(m.tokenize(text)).toEqual(hf.encode(text).ids);
      }
      expect(m.tokenize('<|im_start|>user', true)[0]).toBe(1);
      expect(new Set(await m.greedy([1], 32)).size).toBeGreaterThanOrEqual(8);
    } finally {
      await m.close();
    }
  });
});
