import { mostKeptThatFits, ownerEndsTrainingBytes, stageTrainingMemory, type StageTrainingMemory, type TrainingDims } from '@edge-node/partitioner';
import type { LayerRange } from '../engine/layer-range.js';
import type { ModelConfig } from '../model/model-config.js';
import type { TensorInfo } from '../model/model-file.js';

/** A stage's memory for a training job, by what takes it (bytes): the partitioner's formula, which plans with it too. */
export type StageJobMemory = StageTrainingMemory;

function dimsOf(c: ModelConfig): TrainingDims {
  return { hiddenSize: c.hiddenSize, intermediateSize: c.intermediateSize, numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim, vocabSize: c.vocabSize, tiedEmbeddings: c.tiedEmbeddings };
}

/**
 * What a stage holding `range` needs for a job (training/stage-training-job.ts): an estimate from the model's
 * shapes and the range's stored tensors, for refusing a job that cannot fit before it starts. `rows` is the longest
 * sequence, `inFlight` the micro-batches a stage may hold at once, `kept` how many may keep their activations (1:
 * the least, and what a job is refused by).
 */
export function stageJobBytes(config: ModelConfig, tensors: ReadonlyMap<string, TensorInfo>, range: LayerRange, rank: number, rows: number, inFlight: number, kept = 1): StageJobMemory {
  let weights = 0;
  for (let l = range.startLayer; l < range.endLayer; l++) for (const [name, t] of tensors) if (name.startsWith(`blk.${l}.`)) weights += t.byteLength;
  return stageTrainingMemory(dimsOf(config), range.endLayer - range.startLayer, weights, rank, rows, inFlight, kept);
}

/**
 * How many micro-batches' activations a stage keeps: the most, up to `inFlight` (then nothing is recomputed), whose
 * estimate fits the memory the node reports available; 1 (the least a job needs) when it fits no more or has not said.
 */
export function keptActivations(config: ModelConfig, tensors: ReadonlyMap<string, TensorInfo>, range: LayerRange, rank: number, rows: number, inFlight: number, available: number | null): number {
  if (available === null) return 1;
  return mostKeptThatFits(inFlight, available, (kept) => stageJobBytes(config, tensors, range, rank, rows, inFlight, kept).total);
}

/** What the owner of a job holds of the model's ends: the embeddings as stored and as f32, the head (unless tied) and its transpose. */
export function modelEndsBytes(config: ModelConfig, tensors: ReadonlyMap<string, TensorInfo>): number {
  const stored = (name: string) => tensors.get(name)?.byteLength ?? 0;
  return ownerEndsTrainingBytes(dimsOf(config), stored('token_embd.weight'), stored('output.weight'));
}
