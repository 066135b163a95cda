import type { LayerRange } from '../engine/layer-range.js';
import type { ModelConfig } from '../model/model-config.js';
import type { TensorInfo } from '../model/model-file.js';
import { LORA_PROJECTIONS } from '../model/lora-adapter.js';
import { targetDims } from './lora-set.js';

/** A stage's memory for a training job, by what takes it (bytes). */
export interface StageJobMemory {
  /** Its copy of the range's weights, in the file's encoding. */
  weights: number;
  /** The transposes the backward multiplies (Q8_0, or f32 when a matrix's rows are not whole blocks). */
  transposes: number;
  /** A and B, their gradients and AdamW's two moments: 16 bytes per adapter value. */
  adapter: number;
  /** The inputs of the micro-batches in flight and one sequence's activations through the range in its backward. */
  activations: number;
  total: number;
}

/** Bytes of a matrix [rows, cols]'s transpose as quantised-frozen.ts keeps it. */
function transposeBytes(rows: number, cols: number): number {
  return rows % 32 === 0 ? cols * (rows / 32) * 34 : rows * cols * 4;
}

/**
 * What a stage holding `range` needs for a job (training/stage-training-job.ts): an estimate from the model's
 * shapes, for refusing a job that cannot fit before it starts. `rows` is the longest sequence, `inFlight` the
 * micro-batches a stage may hold at once.
 */
export function stageJobBytes(config: ModelConfig, tensors: ReadonlyMap<string, TensorInfo>, range: LayerRange, rank: number, rows: number, inFlight: number): StageJobMemory {
  const c = config;
  const layers = range.endLayer - range.startLayer;
  let weights = 0;
  for (let l = range.startLayer; l < range.endLayer; l++) for (const [name, t] of tensors) if (name.startsWith(`blk.${l}.`)) weights += t.byteLength;
  const shape = { hidden: c.hiddenSize, ffn: c.intermediateSize, heads: c.numHeads, kvHeads: c.numKvHeads, headDim: c.headDim };
  const dims = LORA_PROJECTIONS.map((t) => targetDims(shape, t));
  const transposes = layers * dims.reduce((s, d) => s + transposeBytes(d.outDim, d.inDim), 0);
  const adapter = layers * dims.reduce((s, d) => s + rank * (d.inDim + d.outDim), 0) * 16;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  // Per row and layer: the residual stream and norms, q, k, v, attention's probabilities over the row's past, the
  // MLP's gate, up and down input, and each adapted product's input and A·x (f32).
  const perRowLayer = 4 * (5 * c.hiddenSize + 2 * qDim + 2 * kvDim + 3 * c.intermediateSize + c.numHeads * rows + 7 * rank);
  const activations = inFlight * rows * c.hiddenSize * 4 + layers * rows * perRowLayer;
  return { weights, transposes, adapter, activations, total: weights + transposes + adapter + activations };
}

/** What the owner of a job holds of the model's ends: the embeddings as stored and as f32, the head (unless tied) and its transpose. */
export function modelEndsBytes(config: ModelConfig, tensors: ReadonlyMap<string, TensorInfo>): number {
  const c = config;
  const stored = (name: string) => tensors.get(name)?.byteLength ?? 0;
  return stored('token_embd.weight') + c.vocabSize * c.hiddenSize * 4 + (c.tiedEmbeddings ? 0 : stored('output.weight')) + transposeBytes(c.vocabSize, c.hiddenSize);
}
