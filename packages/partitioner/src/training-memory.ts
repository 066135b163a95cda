import type { ModelShape } from './model-shape.js';

/** The sizes a training job's memory depends on. */
export type TrainingDims = Pick<ModelShape, 'hiddenSize' | 'intermediateSize' | 'numHeads' | 'numKvHeads' | 'headDim' | 'vocabSize' | 'tiedEmbeddings'>;

/** A stage's memory for a training job, by what takes it (bytes). */
export interface StageTrainingMemory {
  /** Its own copy of the range's weights, in the file's encoding (beside the serving copy, which the job does not use). */
  weights: number;
  /** The transposes the backward multiplies (Q8_0, or f32 when a matrix's rows are not whole blocks). */
  transposes: number;
  /** A and B, their gradients and AdamW's two moments: 16 bytes per adapter value. */
  adapter: number;
  /**
   * The inputs of the micro-batches in flight and `kept` sequences' activations through the range (kept from their
   * forwards, or one recomputed in its backward: a stage holds at most `kept` at once).
   */
  activations: number;
  total: number;
}

/** Bytes of a matrix [rows, cols]'s transpose as the runtime keeps it for the backward: Q8_0 (34 bytes per 32), else f32. */
export function transposeBytes(rows: number, cols: number): number {
  return rows % 32 === 0 ? cols * (rows / 32) * 34 : rows * cols * 4;
}

/** In and out sizes of the seven adapted projections of a layer (attn_q, k, v, output, ffn_gate, up, down). */
export function loraProjectionDims(d: TrainingDims): { inDim: number; outDim: number }[] {
  const h = d.hiddenSize;
  const qDim = d.numHeads * d.headDim;
  const kvDim = d.numKvHeads * d.headDim;
  const f = d.intermediateSize;
  return [
    { inDim: h, outDim: qDim },
    { inDim: h, outDim: kvDim },
    { inDim: h, outDim: kvDim },
    { inDim: qDim, outDim: h },
    { inDim: h, outDim: f },
    { inDim: h, outDim: f },
    { inDim: f, outDim: h },
  ];
}

/**
 * What a stage holding `layers` layers (whose stored weights take `weightBytes`) needs for a job: the one estimate
 * both the planner and the runtime's refusal before a job use. `rows` is the longest sequence, `inFlight` the
 * micro-batches a stage may hold at once, `kept` how many of them may keep their activations (1, the least a job
 * needs: one recomputed in its backward; up to inFlight, when nothing is recomputed).
 */
export function stageTrainingMemory(d: TrainingDims, layers: number, weightBytes: number, rank: number, rows: number, inFlight: number, kept = 1): StageTrainingMemory {
  const dims = loraProjectionDims(d);
  const transposes = layers * dims.reduce((s, p) => s + transposeBytes(p.outDim, p.inDim), 0);
  const adapter = layers * dims.reduce((s, p) => s + rank * (p.inDim + p.outDim), 0) * 16;
  const qDim = d.numHeads * d.headDim;
  const kvDim = d.numKvHeads * d.headDim;
  // Per row and layer: the residual stream and norms, q, k, v, attention's probabilities over the row's past, the
  // MLP's gate, up and down input, and each adapted product's input and A·x (f32); SwiGLU's 1 + e^−g (f64, so its
  // backward needs no exponential: node training/swiglu-grad.ts).
  const perRowLayer = 4 * (5 * d.hiddenSize + 2 * qDim + 2 * kvDim + 3 * d.intermediateSize + d.numHeads * rows + 7 * rank) + 8 * d.intermediateSize;
  const activations = inFlight * rows * d.hiddenSize * 4 + kept * layers * rows * perRowLayer;
  return { weights: weightBytes, transposes, adapter, activations, total: weightBytes + transposes + adapter + activations };
}

/**
 * What the owner of a job holds of the model's ends: the embeddings as stored and as f32, the head as stored (none
 * when tied) and its transpose for the backward.
 */
export function ownerEndsTrainingBytes(d: TrainingDims, embeddingStoredBytes: number, headStoredBytes: number): number {
  return embeddingStoredBytes + d.vocabSize * d.hiddenSize * 4 + (d.tiedEmbeddings ? 0 : headStoredBytes) + transposeBytes(d.vocabSize, d.hiddenSize);
}

/**
 * How many micro-batches' activations a stage keeps: the most, from `inFlight` (then nothing is recomputed) down to
 * 1 (the least a job needs), whose memory `bytesWith(kept)` fits `available` — the rule the runtime keeps by and the
 * training cost model prices.
 */
export function mostKeptThatFits(inFlight: number, available: number, bytesWith: (kept: number) => number): number {
  for (let kept = inFlight; kept > 1; kept--) if (bytesWith(kept) <= available) return kept;
  return 1;
}
