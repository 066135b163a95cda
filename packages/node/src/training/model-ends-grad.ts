import { chunkedCrossEntropy } from './cross-entropy.js';
import type { FrozenEnds } from './frozen-model.js';
import { linearForward } from './linear-grad.js';
import { rmsNormBackward, rmsNormForward } from './rms-norm-grad.js';
import type { TrainSequence } from './transformer-grad.js';
import { zerosLike, type Vec } from './vec.js';

/** The embedding rows of the tokens (positions 0 … T−1 of one sequence): the first stage's input. */
export function embedRows(m: FrozenEnds, tokens: ArrayLike<number>, t: number): Vec {
  const H = m.shape.hidden;
  const x = zerosLike(m.embedding, t * H);
  for (let i = 0; i < t; i++) x.set(m.embedding.subarray(tokens[i] * H, (tokens[i] + 1) * H), i * H);
  return x;
}

/** Logits [T, vocab] from the last layer's output: the final norm and the head. */
export function headLogits(m: FrozenEnds, x: Vec, t: number): Vec {
  return linearForward(rmsNormForward(x, t, m.shape.hidden, m.outNorm, m.shape.eps).y, t, m.head);
}

/**
 * The last layer's output → the sequence's summed loss over its counted positions, and gradScale · its gradient with
 * respect to that output (the final norm, the head and the cross-entropy, and back through the norm): what the data's
 * owner computes between the forward and the backward, so labels and logits stay with it.
 */
export function headLossAndGrad(m: FrozenEnds, x: Vec, seq: TrainSequence, gradScale: number): { lossSum: number; dx: Vec } {
  const t = seq.tokens.length - 1;
  const s = m.shape;
  const { y: hn, r } = rmsNormForward(x, t, s.hidden, m.outNorm, s.eps);
  const ce = chunkedCrossEntropy(hn, t, m.head, seq.tokens.subarray(1), seq.lossMask, gradScale, m.gemm);
  return { lossSum: ce.lossSum, dx: rmsNormBackward(ce.dh, x, r, t, s.hidden, m.outNorm) };
}
