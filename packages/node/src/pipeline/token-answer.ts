import { verifyDraft } from '../engine/draft-verification.js';
import type { Sampler, TokenLogprob } from '../engine/sampler.js';
import { ACTIVATION_FRAME_VERSION, type ActFrame, type TokenFrame, type WireLogprob } from './activation-frame.js';

/** A sampled token's log-probabilities as a token frame carries them. */
export function wireLogprob(lp: TokenLogprob): WireLogprob {
  return { l: lp.logprob, top: lp.top.map((e) => [e.token, e.logprob]) };
}

/** The last stage's answer to a verification step: the drafted tokens its samples agree with, and the next one. */
export function verificationAnswer(
  frame: Pick<ActFrame, 'rid' | 'step' | 'pos'>,
  draft: Int32Array,
  sampler: Sampler,
  model: { vocabSize: number; contextLength: number },
  logits: Float32Array,
  stageMs: number[],
): TokenFrame {
  // Row i stands where a plain step's cache would hold frame.pos + i + 1 positions: the same grammar budget.
  const { tokens, logprobs } = verifyDraft(sampler, logits, model.vocabSize, Array.from(draft), (i) => model.contextLength - (frame.pos + i + 1));
  const out: TokenFrame = { t: 'token', v: ACTIVATION_FRAME_VERSION, rid: frame.rid, step: frame.step, token: tokens[0], stageMs };
  if (tokens.length > 1) out.more = Int32Array.from(tokens.slice(1));
  if (logprobs) {
    out.lp = wireLogprob(logprobs[0]);
    if (logprobs.length > 1) out.lps = logprobs.slice(1).map(wireLogprob);
  }
  return out;
}
