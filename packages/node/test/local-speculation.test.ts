/**
 * Speculative decoding on one device (LocalModel over stories260K, both backends): prompt-lookup drafts and a
 * prediction give the same tokens as decoding one at a time — greedy, seeded sampling with penalties, log-
 * probabilities (the same bits on the kernels), a JSON grammar — while the prediction's drafts are all accepted in
 * fewer passes. Speculation is on by default with the kernels and off with tfjs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalModel } from '../src/engine/local-model.js';
import { GREEDY, type SamplingParams } from '../src/engine/sampler.js';
import type { GeneratorOptions } from '../src/engine/generator.js';
import { STORIES_PATH } from './support/stories-model.js';
import { checkSameTokenizer, DraftModelError } from '../src/engine/draft-model.js';
import type { Tokenizer } from '../src/tokenizer/tokenizer.js';

const PROMPT = 'Tom had a big red ball. Tom liked to play with the ball in the park. One day, Tom';
const SEEDED: SamplingParams = { ...GREEDY, temperature: 0.9, topK: 40, seed: 5, repetitionPenalty: 1.2 };

describe.each(['kernels', 'tfjs'] as const)('LocalModel speculation (%s)', (backend) => {
  let m: LocalModel;
  beforeAll(async () => {
    m = await LocalModel.open(STORIES_PATH, { backend, threads: 1 });
  });
  afterAll(() => m?.close());

  const both = async (o: Omit<GeneratorOptions, 'speculate'>) => {
    const off = await m.generate({ ...o, speculate: false });
    const on = await m.generate({ ...o, speculate: true });
    expect(off.speculation).toBeUndefined();
    expect(on.tokens).toEqual(off.tokens);
    expect(on.text).toBe(off.text);
    return { off, on };
  };

  it('greedy and seeded sampling with penalties: the same tokens and log-probabilities, drafts accepted', async () => {
    const g = await both({ prompt: PROMPT, maxTokens: 96, sampling: GREEDY, logprobs: 3 });
    // The kernels: the same bits; tfjs's products round a pass of several rows differently (off by default there).
    const close = (a: { logprob: number }[] | undefined, b: { logprob: number }[] | undefined) => {
      if (backend === 'kernels') expect(a).toEqual(b);
      else a!.forEach((lp, i) => expect(lp.logprob).toBeCloseTo(b![i].logprob, 4));
    };
    close(g.on.logprobs, g.off.logprobs);
    expect(g.on.speculation!.accepted).toBeGreaterThan(0);
    const s = await both({ prompt: PROMPT, maxTokens: 64, sampling: SEEDED, logprobs: 0 });
    close(s.on.logprobs, s.off.logprobs);
    expect(s.on.speculation!.drafted).toBeGreaterThan(0);
  });

  it('a JSON grammar: the same constrained output', async () => {
    const { on } = await both({ prompt: 'Answer in JSON: ', maxTokens: 40, sampling: SEEDED, grammar: { type: 'json', schema: null } });
    expect(() => JSON.parse(on.text)).not.toThrow();
  });

  it('is on by default with the kernels only', async () => {
    expect(m.speculation().enabled).toBe(backend === 'kernels');
  });

  it('a prediction of the answer: every draft accepted, the same tokens in a fraction of the passes', async () => {
    const ref = await m.generate({ prompt: PROMPT, maxTokens: 64, sampling: GREEDY, speculate: false });
    const r = await m.generate({ prompt: PROMPT, maxTokens: 64, sampling: GREEDY, prediction: ref.tokens });
    expect(r.tokens).toEqual(ref.tokens);
    expect(r.speculation!.accepted).toBe(r.speculation!.drafted);
    expect(r.speculation!.walks).toBeLessThan(ref.tokens.length / 2);
    // A prediction that is wrong from its first token costs nothing in the text.
    const wrong = await m.generate({ prompt: PROMPT, maxTokens: 64, sampling: GREEDY, prediction: ref.tokens.map((t) => (t + 1) % m.config.vocabSize) });
    expect(wrong.tokens).toEqual(ref.tokens);
  });
});

describe('a draft model (--draft-model)', () => {
  it('stories260K as its own draft: every draft accepted, the same tokens; the draft cache follows rejections', async () => {
    const draft = await LocalModel.open(STORIES_PATH, { threads: 1 });
    const served = await LocalModel.open(STORIES_PATH, { threads: 1, draftModel: draft.asDraftFor(draft.tokenizer, 512) });
    try {
      const ref = await served.generate({ prompt: PROMPT, maxTokens: 80, sampling: GREEDY, speculate: false });
      const own = await served.generate({ prompt: PROMPT, maxTokens: 80, sampling: GREEDY });
      expect(own.tokens).toEqual(ref.tokens);
      expect(own.speculation!.accepted).toBe(own.speculation!.drafted);
      expect(own.speculation!.walks).toBeLessThan(ref.tokens.length / 2);
      // Sampling: the draft (greedy) is often rejected; the draft cache is cut back each time, the text is the seed's.
      const off = await served.generate({ prompt: PROMPT, maxTokens: 60, sampling: SEEDED, speculate: false });
      const on = await served.generate({ prompt: PROMPT, maxTokens: 60, sampling: SEEDED });
      expect(on.tokens).toEqual(off.tokens);
      expect(on.speculation!.accepted).toBeLessThan(on.speculation!.drafted);
    } finally {
      await served.close();
      await draft.close();
    }
  });

  it('refuses a draft model whose tokenizer is not the served one, saying why', async () => {
    const m = await LocalModel.open(STORIES_PATH, { threads: 1 });
    try {
      const other = { ...m.tokenizer, vocabSize: m.tokenizer.vocabSize + 1, eosIds: m.tokenizer.eosIds, encode: m.tokenizer.encode.bind(m.tokenizer) } as Tokenizer;
      expect(() => checkSameTokenizer(m.tokenizer, other)).toThrow(DraftModelError);
      expect(() => m.asDraftFor(other, 256)).toThrow(/vocabulary has \d+ tokens/);
      const shifted = { ...other, vocabSize: m.tokenizer.vocabSize, encode: (t: string) => m.tokenizer.encode(t, { addBos: false }).map((x) => x + 1) } as Tokenizer;
      expect(() => checkSameTokenizer(m.tokenizer, shifted)).toThrow(/other token ids/);
      expect(() => checkSameTokenizer(m.tokenizer, m.tokenizer)).not.toThrow();
    } finally {
      await m.close();
    }
  });
});
