import { AdamW, clipGlobalNorm } from './adamw.js';
import type { FrozenModel } from './frozen-model.js';
import { loraArrays, zerosLikeLora, type LoraSet } from './lora-set.js';
import { sequenceLossAndGrad, type TrainSequence } from './transformer-grad.js';

export class EmptyBatchError extends Error {
  override name = 'EmptyBatchError';
}

/** Counted tokens of a batch: the positions whose next-token loss counts. */
export function countedTokens(batch: readonly TrainSequence[]): number {
  let n = 0;
  for (const s of batch) for (const m of s.lossMask) if (m) n++;
  return n;
}

/** The mean loss over a batch's counted tokens, and its gradient with respect to the adapter (a new LoraSet). */
export function batchLossAndGrad(model: FrozenModel, lora: LoraSet, batch: readonly TrainSequence[]): { loss: number; grads: LoraSet; tokens: number } {
  const tokens = countedTokens(batch);
  if (tokens === 0) throw new EmptyBatchError('this batch has no token the loss counts (every position is prompt)');
  const grads = zerosLikeLora(lora);
  let sum = 0;
  // Sequences in order, each adding into the same gradients: the same batch gives the same bits.
  for (const seq of batch) sum += sequenceLossAndGrad(model, lora, grads, seq, 1 / tokens);
  return { loss: sum / tokens, grads, tokens };
}

export interface StepResult {
  loss: number;
  gradNorm: number;
  tokens: number;
}

/** One optimiser step: loss and gradients of the batch, clipped to maxGradNorm, AdamW. */
export function trainStep(model: FrozenModel, lora: LoraSet, opt: AdamW, batch: readonly TrainSequence[], maxGradNorm: number, lr?: number): StepResult {
  const { loss, grads, tokens } = batchLossAndGrad(model, lora, batch);
  const gradNorm = clipGlobalNorm(grads, maxGradNorm);
  if (!Number.isFinite(gradNorm)) throw new RangeError(`the gradient is not finite (norm ${gradNorm}) at loss ${loss}`);
  opt.step(grads, lr);
  return { loss, gradNorm, tokens };
}

/** How many trainable values an adapter holds. */
export function loraParameterCount(lora: LoraSet): number {
  return loraArrays(lora).reduce((n, a) => n + a.length, 0);
}
