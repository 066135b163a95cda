import { batchIndices } from './batch-order.js';
import type { FrozenEnds } from './frozen-model.js';
import { pipelinedStep } from './pipelined-step.js';
import type { TrainingStage } from './training-stage.js';
import type { TrainSequence } from './transformer-grad.js';

export interface FinetuneProgress {
  step: number;
  steps: number;
  loss: number;
  /** Tokens through the model (every position of the batch's sequences) per second, over the job so far. */
  tokensPerSecond: number;
  etaSeconds: number;
}

export interface TrainingLoopOptions {
  ends: FrozenEnds;
  stages: readonly TrainingStage[];
  sequences: readonly TrainSequence[];
  steps: number;
  /** The step to start at (a job resumed from a checkpoint; default 0): batches are those of the steps run. */
  startStep?: number;
  batch: number;
  seed: number;
  maxGradNorm: number;
  /** Micro-batches in flight at once (default: one per stage, 1F1B). */
  inFlight?: number;
  onProgress?: (p: FinetuneProgress) => void;
  /** Checked before each step: a job stopped throws from here. */
  checkStopped?: () => void;
  /** After each step's update, with the number of steps done (a checkpoint may be taken here). */
  onStepDone?: (stepsDone: number) => Promise<void>;
}

export interface TrainingLoopResult {
  /** The training forward's loss of each step run, before its update, from startStep on. */
  losses: number[];
  tokens: number;
  seconds: number;
}

/**
 * `steps` AdamW steps of `batch` sequences in the seeded order (batch-order.ts: the same batches wherever it runs),
 * each through the stages (pipelined-step.ts), with progress after each.
 */
export async function runTrainingLoop(o: TrainingLoopOptions): Promise<TrainingLoopResult> {
  const losses: number[] = [];
  let tokens = 0;
  const start = performance.now();
  const first = o.startStep ?? 0;
  for (let step = first; step < o.steps; step++) {
    o.checkStopped?.();
    const batch = batchIndices(o.sequences.length, o.batch, step, o.seed).map((i) => o.sequences[i]);
    const r = await pipelinedStep(o.ends, o.stages, batch, o.maxGradNorm, o.inFlight ?? o.stages.length);
    losses.push(r.loss);
    for (const s of batch) tokens += s.tokens.length - 1;
    await o.onStepDone?.(step + 1);
    const seconds = (performance.now() - start) / 1000;
    o.onProgress?.({ step: step + 1, steps: o.steps, loss: r.loss, tokensPerSecond: tokens / seconds, etaSeconds: (seconds / (step + 1 - first)) * (o.steps - step - 1) });
    // The event loop turns between steps (signals, output).
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { losses, tokens, seconds: (performance.now() - start) / 1000 };
}
