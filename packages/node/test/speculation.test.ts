/**
 * Speculative decoding's pure parts: prompt-lookup drafts, the verification rule (greedy: the agreeing prefix; sampling: the output distribution is the model's,
 * checked by chi-square over seeded draws), the frames that carry drafts, and a KV cache cut back.
 */
import { describe, expect, it } from 'vitest';
import { promptLookupDraft } from '../src/engine/prompt-lookup.js';
import { predictionDrafter } from '../src/engine/predicted-draft.js';
import { verifyDraft } from '../src/engine/draft-verification.js';
import { GREEDY, Sampler, type SamplingParams } from '../src/engine/sampler.js';
import { ACTIVATION_FRAME_VERSION, FrameValidationError, parseActivationFrame } from '../src/pipeline/activation-frame.js';

describe('promptLookupDraft', () => {
  it('continues the latest earlier occurrence of the longest matching tail', () => {
    //            0  1  2  3  4  5  6  7  8  9
    const h = [5, 6, 7, 8, 9, 1, 6, 7, 2, 3, 6, 7];
    // Tail [6, 7] occurs at 1 and 6; the latest (6) is followed by 2, 3, 6, 7.
    expect(promptLookupDraft(h, 3)).toEqual([2, 3, 6]);
    // A longer tail that matches wins over a more recent shorter one: [1, 6, 7] only at 5.
    expect(promptLookupDraft([...h.slice(0, 10), 1, 6, 7], 2)).toEqual([2, 3]);
    expect(promptLookupDraft(h, 3, { maxNgram: 1, minNgram: 1 })).toEqual([2, 3, 6]);
  });

  it('drafts nothing where the tail never occurred, and never more than asked or than the history holds', () => {
    expect(promptLookupDraft([1, 2, 3, 4], 5)).toEqual([]);
    expect(promptLookupDraft([1, 2, 1], 5)).toEqual([2, 1]);
    expect(promptLookupDraft([1, 2, 1, 2], 0)).toEqual([]);
    expect(promptLookupDraft([], 3)).toEqual([]);
    expect(() => promptLookupDraft([1], 1, { minNgram: 0 })).toThrow(RangeError);
  });
});

describe('predictionDrafter', () => {
  const draft = predictionDrafter([10, 11, 12, 13, 14, 15]);
  it('drafts the prediction’s next tokens while the output follows it', () => {
    expect(draft([1, 2], 3, 2)).toEqual([10, 11, 12]);
    expect(draft([1, 2, 10, 11], 3, 2)).toEqual([12, 13, 14]);
  });
  it('picks the prediction up again by lookup once the output departs from it', () => {
    // The output wrote 99 instead of 12, then 13: the tail [13] continues with 14, 15 in the prediction.
    expect(draft([1, 2, 10, 11, 99, 13], 2, 2)).toEqual([14, 15]);
    expect(draft([1, 2, 77], 2, 2)).toEqual([]);
  });
});

/** Two rows of logits over a 5-token vocabulary. */
const ROW = Float32Array.of(1.2, 0.3, 0.9, -0.4, 0.1);
const softmax = (x: Float32Array) => {
  const e = Array.from(x, (v) => Math.exp(v));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

describe('verifyDraft', () => {
  it('greedy: the agreeing prefix, then the token sampled instead of the first wrong draft', () => {
    const V = 5;
    const rows = new Float32Array(3 * V);
    rows.set([0, 0, 5, 0, 0], 0); // argmax 2
    rows.set([0, 5, 0, 0, 0], V); // argmax 1
    rows.set([5, 0, 0, 0, 0], 2 * V); // argmax 0
    expect(verifyDraft(new Sampler(GREEDY), rows, V, [2, 1], () => 10).tokens).toEqual([2, 1, 0]);
    expect(verifyDraft(new Sampler(GREEDY), rows, V, [2, 3], () => 10).tokens).toEqual([2, 1]);
    expect(verifyDraft(new Sampler(GREEDY), rows, V, [4, 1], () => 10).tokens).toEqual([2]);
    expect(() => verifyDraft(new Sampler(GREEDY), rows, V, [1], () => 10)).toThrow(RangeError);
  });

  it('temperature 1: the output distribution is the model’s; the draft is accepted with probability p(draft), and a rejection follows p without it', () => {
    const params: SamplingParams = { ...GREEDY, temperature: 1, topK: 0, topP: 1, minP: 0 };
    const p = softmax(ROW);
    const draft = 2;
    const N = 20000;
    const counts = [0, 0, 0, 0, 0];
    const afterReject = [0, 0, 0, 0, 0];
    let accepted = 0;
    const rows = new Float32Array(10);
    rows.set(ROW, 0);
    rows.set(ROW, 5);
    for (let seed = 0; seed < N; seed++) {
      const { tokens } = verifyDraft(new Sampler({ ...params, seed }), rows, 5, [draft], () => 10);
      counts[tokens[0]]++;
      if (tokens[0] === draft) {
        accepted++;
        expect(tokens).toHaveLength(2);
      } else afterReject[tokens[0]]++;
    }
    const chi2 = counts.reduce((s, c, i) => s + (c - N * p[i]) ** 2 / (N * p[i]), 0);
    expect(chi2).toBeLessThan(18.47); // χ²(4 df) at p = 0.001
    expect(Math.abs(accepted / N - p[draft])).toBeLessThan(0.015);
    const rest = N - accepted;
    const q = p.map((v, i) => (i === draft ? 0 : v / (1 - p[draft])));
    const chiRest = afterReject.reduce((s, c, i) => (i === draft ? s : s + (c - rest * q[i]) ** 2 / (rest * q[i])), 0);
    expect(chiRest).toBeLessThan(16.27); // χ²(3 df) at p = 0.001
  });

  it('with a seed, the tokens are those of sampling one row at a time', () => {
    const params: SamplingParams = { ...GREEDY, temperature: 0.9, topK: 0, topP: 1, minP: 0, seed: 42 };
    const rows = new Float32Array(15);
    for (let r = 0; r < 3; r++) rows.set(ROW.map((v, i) => v + 0.3 * r * i), r * 5);
    const one = new Sampler(params);
    const seq = [0, 1, 2].map((r) => one.sample(rows.subarray(r * 5, r * 5 + 5)));
    const got = verifyDraft(new Sampler(params), rows, 5, seq.slice(0, 2), () => 10).tokens;
    expect(got).toEqual(seq);
  });
});

describe('frames with drafts', () => {
  const limits = { maxRows: 64, hiddenSize: 4, vocabSize: 100, maxRoute: 8, maxContext: 256 };
  const act = (extra: Record<string, unknown>) => ({ t: 'act', v: ACTIVATION_FRAME_VERSION, rid: 'r', stage: 0, step: 3, pos: 10, final: true, ...extra });

  it('a decode step carries its token and its draft in one frame; the answer carries the tokens after the first', () => {
    const f = parseActivationFrame(act({ n: 3, tokens: [1, 2, 3], draft: [2, 3] }), limits);
    expect(f.t === 'act' && Array.from(f.draft!)).toEqual([2, 3]);
    const tok = parseActivationFrame({ t: 'token', v: ACTIVATION_FRAME_VERSION, rid: 'r', step: 3, token: 2, more: [3, 4], lp: { l: -2, top: [] }, lps: [{ l: -1, top: [] }, { l: -0.5, top: [] }] }, limits);
    expect(tok.t === 'token' && [Array.from(tok.more!), tok.lps!.length]).toEqual([[3, 4], 2]);
  });

  it('a verification may go in parts: each says where it starts in the step, and only the part that ends it is final', () => {
    const first = parseActivationFrame(act({ n: 2, tokens: [1, 2], draft: [2, 3, 4], final: false }), limits);
    const last = parseActivationFrame(act({ pos: 12, n: 2, tokens: [3, 4], draft: [2, 3, 4], rowsBefore: 2 }), limits);
    expect([first.t === 'act' && first.rowsBefore, last.t === 'act' && last.rowsBefore]).toEqual([undefined, 2]);
    // Past the step's rows, a final part short of its end, a non-final one at it, a part of a plain step: refused.
    for (const extra of [{ n: 2, tokens: [3, 4], rowsBefore: 3 }, { n: 1, tokens: [3], rowsBefore: 2 }, { n: 2, tokens: [3, 4], rowsBefore: 2, final: false }]) {
      expect(() => parseActivationFrame(act({ pos: 12, draft: [2, 3, 4], ...extra }), limits), JSON.stringify(extra)).toThrow(/in parts whose last one is final/);
    }
    expect(() => parseActivationFrame(act({ n: 1, tokens: [3], rowsBefore: 1 }), limits)).toThrow(/only a verification step/);
  });

  it('refuses rows that do not match the draft, a draft on a prefill, and oversized drafts', () => {
    expect(() => parseActivationFrame(act({ n: 2, tokens: [1, 2], draft: [2, 3] }), limits)).toThrow(FrameValidationError);
    expect(() => parseActivationFrame(act({ n: 2, tokens: [1, 2] }), limits)).toThrow(FrameValidationError);
    expect(() => parseActivationFrame(act({ step: 0, pos: 0, n: 2, tokens: [1, 2], draft: [2] }), limits)).toThrow(FrameValidationError);
    const big = Array.from({ length: 17 }, (_, i) => i);
    expect(() => parseActivationFrame(act({ n: 18, tokens: [0, ...big], draft: big }), limits)).toThrow(FrameValidationError);
    expect(() => parseActivationFrame({ t: 'token', v: ACTIVATION_FRAME_VERSION, rid: 'r', step: 1, token: 2, more: [500] }, limits)).toThrow(FrameValidationError);
    // One log-probability per token: lps without lp, or not one per token of more, is refused.
    expect(() => parseActivationFrame({ t: 'token', v: ACTIVATION_FRAME_VERSION, rid: 'r', step: 1, token: 2, more: [3], lps: [{ l: -1, top: [] }] }, limits)).toThrow(/lps must follow lp/);
    expect(() => parseActivationFrame({ t: 'token', v: ACTIVATION_FRAME_VERSION, rid: 'r', step: 1, token: 2, more: [3], lp: { l: -2, top: [] }, lps: [{ l: -1, top: [] }, { l: -1, top: [] }] }, limits)).toThrow(/lps must follow lp/);
  });
});
