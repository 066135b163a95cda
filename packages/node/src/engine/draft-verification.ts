import type { Sampler, TokenLogprob } from './sampler.js';

/** What the last stage sends back for a verification pass: the tokens that now follow, in order. */
export interface VerifiedTokens {
  /** The drafted tokens the model agreed with, then the one it sampled after them (1 to draft length + 1). */
  tokens: number[];
  /** One per token, when the request asked for log-probabilities. */
  logprobs: TokenLogprob[] | null;
}

/**
 * Samples every row of a verification pass in order, with the request's own sampler, as decoding one token at a
 * time would: row i holds the logits after the last sampled token and the first i drafted ones. Row i's draw is
 * made exactly as a plain step's (penalties over the history so far, grammar state, `remaining`, one random draw
 * when sampling), so greedy text is bit-identical and seeded text too. A drafted token is accepted when the draw
 * equals it; the first disagreement ends the pass with the token drawn instead.
 *
 * At temperature > 0 this is the speculative sampling rule for a one-hot draft (q(d) = 1): accept d with
 * probability p(d), else draw from p with d removed, renormalised. Drawing x ~ p and keeping it is that rule: x = d
 * with probability p(d), and given x ≠ d, x follows p restricted to the rest — so the output distribution is p's.
 *
 * `logits` holds draft.length + 1 rows of `vocabSize`; `remaining(i)` is the tokens still allowed at row i, that
 * row's included (the grammar's budget).
 */
export function verifyDraft(sampler: Sampler, logits: Float32Array, vocabSize: number, draft: readonly number[], remaining: (row: number) => number): VerifiedTokens {
  if (logits.length !== (draft.length + 1) * vocabSize) throw new RangeError(`a verification of ${draft.length} drafted tokens needs ${draft.length + 1} rows of logits, got ${logits.length / vocabSize}`);
  const tokens: number[] = [];
  const logprobs: TokenLogprob[] = [];
  for (let i = 0; i <= draft.length; i++) {
    const token = sampler.sample(logits.subarray(i * vocabSize, (i + 1) * vocabSize), remaining(i));
    tokens.push(token);
    if (sampler.lastLogprob) logprobs.push(sampler.lastLogprob);
    if (i < draft.length && token !== draft[i]) break;
  }
  return { tokens, logprobs: sampler.lastLogprob ? logprobs : null };
}
