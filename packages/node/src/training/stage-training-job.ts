import { createKernelRuntime } from '@edge-node/kernels';
import type { LayerRange } from '../engine/layer-range.js';
import { loadShardWeights } from '../engine/shard-weights.js';
import type { ModelFile } from '../model/model-file.js';
import { ADAMW_DEFAULTS } from './adamw.js';
import { frozenRange, trainShape } from './frozen-model.js';
import { KernelGemm } from './kernel-gemm.js';
import { LayerRangeTrainer, type TrainerState } from './layer-range-trainer.js';
import { createLora } from './lora-set.js';
import { checkTransposesFit, quantisedFrozen } from './quantised-frozen.js';

/** What a stage's slice of a job starts from: the adapter's shape, its seeded initial A (B = 0) and the optimiser. */
export interface StageJobParams {
  rank: number;
  alpha: number;
  lr: number;
  /** Seeds the whole adapter's A as createLora does; the stage keeps its layers' part, so any split starts alike. */
  seed: number;
  /**
   * How many micro-batches' activations the stage may hold at once (default 1): the owner sets it from the memory
   * the stage's node reports available (job-memory.ts keptActivations), which its estimate then counts.
   */
  keep?: number;
}

export interface StageTrainingJob {
  trainer: LayerRangeTrainer;
  close(): Promise<void>;
}

/**
 * A stage's part of a fine-tuning job: its layers read into kernel arenas of their own (the file's blocks, with the
 * Q8_0 transposes the backward multiplies: quantised-frozen.ts), its slice of the adapter, and a trainer that keeps
 * the activations of up to `keep` micro-batches at once and recomputes the others' forward in their backward (several
 * micro-batches are in flight on a stage; layer-range-trainer.ts: { keepUpTo }); from
 * `resume` (a checkpoint of these layers) when the job goes on after a lost stage.
 */
export async function openStageTrainingJob(model: ModelFile, range: LayerRange, p: StageJobParams, threads: number, resume?: TrainerState): Promise<StageTrainingJob> {
  const runtime = await createKernelRuntime({ threads });
  try {
    const weights = await loadShardWeights(model, range, runtime);
    checkTransposesFit(weights);
    const frozen = frozenRange(weights, model.ropeLayout, await KernelGemm.create(runtime), (w) => quantisedFrozen(runtime, w));
    const lora = createLora(trainShape(model.config, model.ropeLayout), model.config.numLayers, p.rank, p.alpha, p.seed);
    const trainer = new LayerRangeTrainer(frozen, lora.layers.slice(range.startLayer, range.endLayer), { activations: { keepUpTo: p.keep ?? 1 }, adamw: { ...ADAMW_DEFAULTS, lr: p.lr }, ...(resume ? { resume } : {}) });
    return { trainer, close: () => runtime.close() };
  } catch (err) {
    await runtime.close();
    throw err;
  }
}
