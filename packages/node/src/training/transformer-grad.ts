import type { FrozenModel } from './frozen-model.js';
import { LayerRangeTrainer } from './layer-range-trainer.js';
import type { LoraSet } from './lora-set.js';
import { embedRows, headLogits, headLossAndGrad } from './model-ends-grad.js';
import type { Vec } from './vec.js';

/** One training sequence: its tokens, and per position whether predicting the next token counts (prompts do not). */
export interface TrainSequence {
  tokens: Int32Array;
  /** lossMask[i]: the loss counts −log p(tokens[i + 1] | tokens[..i]); length tokens.length − 1. */
  lossMask: readonly boolean[];
}

/** Logits [T, vocab] of the adapted model for one sequence (evaluation, greedy continuation, checks). */
export function forwardLogits(m: FrozenModel, lora: LoraSet, tokens: ArrayLike<number>): Vec {
  const t = tokens.length;
  const range = new LayerRangeTrainer(m, lora.layers, { activations: 'keep' });
  const x = range.forward(0, embedRows(m, tokens, t), t);
  range.reset();
  return headLogits(m, x, t);
}

/**
 * One sequence's forward and backward through the whole model as one layer range (layer-range-trainer.ts, which keeps
 * every layer's activations for the backward, one sequence at a time): returns its summed loss over the counted
 * positions and adds gradScale · d(loss sum)/d(adapter) into `grads`.
 */
export function sequenceLossAndGrad(m: FrozenModel, lora: LoraSet, grads: LoraSet, seq: TrainSequence, gradScale: number): number {
  const t = seq.tokens.length - 1;
  const range = new LayerRangeTrainer(m, lora.layers, { activations: 'keep', grads: grads.layers });
  const x = range.forward(0, embedRows(m, seq.tokens, t), t);
  const { lossSum, dx } = headLossAndGrad(m, x, seq, gradScale);
  range.backward(0, dx);
  return lossSum;
}
