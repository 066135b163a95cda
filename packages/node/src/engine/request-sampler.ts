import { GrammarConstraint } from '../grammar/grammar-constraint.js';
import type { GrammarSpec } from '../grammar/grammar-spec.js';
import type { TokenVocabulary } from '../grammar/token-vocabulary.js';
import { Sampler, type SamplingParams } from './sampler.js';

/** What the last stage knows about a request's sampling (from the `open` block of its first frame). */
export interface SamplerSetup {
  sampling: SamplingParams;
  /** Prompt ids, plus — on a replay after a lost stage — the tokens generated before it. */
  promptTokens: readonly number[];
  /** How many of `promptTokens` (at its end) were generated, not prompt. */
  generated?: number;
  /** Random draws already made (replay). */
  samplesDrawn?: number;
  grammar?: GrammarSpec;
  logprobs?: number;
}

/**
 * The sampler of one request on the last stage. On a replay the grammar is advanced over the tokens generated
 * before, and the random sequence skips the draws already made, so the replay writes exactly what the lost
 * route would have written.
 */
export function createRequestSampler(setup: SamplerSetup, vocabulary: () => TokenVocabulary): Sampler {
  let constraint: GrammarConstraint | undefined;
  if (setup.grammar) {
    constraint = GrammarConstraint.fromSpec(setup.grammar, vocabulary());
    const generated = setup.generated ?? 0;
    for (const t of setup.promptTokens.slice(setup.promptTokens.length - generated)) constraint.accept(t);
  }
  return new Sampler(setup.sampling, setup.promptTokens, setup.samplesDrawn ?? 0, {
    ...(constraint ? { constraint } : {}),
    ...(setup.logprobs !== undefined ? { logprobs: setup.logprobs } : {}),
  });
}
