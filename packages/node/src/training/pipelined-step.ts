import type { FrozenEnds } from './frozen-model.js';
import { embedRows, headLossAndGrad } from './model-ends-grad.js';
import { countedTokens, EmptyBatchError, type StepResult } from './train-step.js';
import type { TrainingStage } from './training-stage.js';
import type { TrainSequence } from './transformer-grad.js';

export class GradientNotFiniteError extends Error {
  override name = 'GradientNotFiniteError';
}

/**
 * One optimiser step of a batch through stages that hold the model's layers in order, driven by the data's owner
 * (who keeps the tokens, the embeddings, the head, the labels and the loss: only hidden states and their gradients go
 * to a stage). Each sequence is a micro-batch: embedded, through every stage's forward, its loss and the gradient of
 * the last stage's output here, then through every stage's backward in reverse. At most `inFlight` micro-batches are
 * between their embedding and their last backward at once — with one per stage, a stage alternates a forward and a
 * backward once the pipeline is full (1F1B). Losses are added in micro-batch order and every stage receives its
 * backwards in that order, so any split of the layers gives one device's bits. Then the gradients' global norm by
 * one scalar passed along the stages, and every stage's step with the clipping scale.
 */
export async function pipelinedStep(ends: FrozenEnds, stages: readonly TrainingStage[], batch: readonly TrainSequence[], maxGradNorm: number, inFlight = stages.length): Promise<StepResult> {
  const tokens = countedTokens(batch);
  if (tokens === 0) throw new EmptyBatchError('this batch has no token the loss counts (every position is prompt)');
  const lossSums: number[] = new Array<number>(batch.length).fill(0);
  // The owner's loss of micro-batch k waits for k − 1's (and sends its backward first): the backwards' order.
  let lossTurn: Promise<void> = Promise.resolve();
  const microBatch = async (k: number): Promise<void> => {
    const seq = batch[k];
    const t = seq.tokens.length - 1;
    let x = embedRows(ends, seq.tokens, t) as Float32Array;
    for (const s of stages) x = await s.forward(k, x, t);
    const before = lossTurn;
    let done!: () => void;
    lossTurn = new Promise((resolve) => (done = resolve));
    await before;
    let back: Promise<Float32Array>;
    try {
      const { lossSum, dx } = headLossAndGrad(ends, x, seq, 1 / tokens);
      lossSums[k] = lossSum;
      back = stages[stages.length - 1].backward(k, dx as Float32Array);
    } finally {
      done();
    }
    let g = await back;
    for (let s = stages.length - 2; s >= 0; s--) g = await stages[s].backward(k, g);
  };
  await inOrderWindow(batch.length, Math.max(1, inFlight), microBatch);
  let sum = 0;
  for (const l of lossSums) sum += l;
  const loss = sum / tokens;
  let ss = 0;
  for (const s of stages) ss = await s.gradSquareSum(ss);
  const gradNorm = Math.sqrt(ss);
  if (!Number.isFinite(gradNorm)) throw new GradientNotFiniteError(`the gradient is not finite (norm ${gradNorm}) at loss ${loss}`);
  const clipScale = gradNorm > maxGradNorm && gradNorm > 0 ? maxGradNorm / gradNorm : null;
  await Promise.all(stages.map((s) => s.step(clipScale)));
  return { loss, gradNorm, tokens };
}

/** Runs job(0 … n−1), job k starting once job k − window has finished; the first failure rejects (after the rest settle). */
async function inOrderWindow(n: number, window: number, job: (k: number) => Promise<void>): Promise<void> {
  const running: Promise<void>[] = [];
  let failure: unknown = null;
  for (let k = 0; k < n && failure === null; k++) {
    if (k >= window) await running[k - window].catch(() => {});
    running.push(job(k).catch((e: unknown) => {
      failure ??= e;
    }));
  }
  await Promise.all(running);
  if (failure !== null) throw failure;
}
