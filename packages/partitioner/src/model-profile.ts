import type { ModelShape } from './model-shape.js';
import { validateModelShape } from './model-shape.js';

/** Costs of one transformer block, independent of the device it runs on. */
export interface LayerCost {
  /** FLOPs of one token through the block's projections and MLP (2 per multiply-add). */
  flopsPerToken: number;
  /** Attention FLOPs (QK^T and AV) per cached token the new token attends to. */
  attentionFlopsPerContextToken: number;
  /** Weight bytes at the dtype the block runs in. */
  weightBytes: number;
  /** K and V of one token. */
  kvBytesPerToken: number;
  /** Working activations of one token inside the block (q/k/v, MLP intermediates, residual). */
  activationBytesPerToken: number;
}

/** Per-layer costs plus what the first stage (embedding) and the last stage (final norm + head) add. */
export interface ModelProfile {
  name: string;
  numLayers: number;
  layers: LayerCost[];
  /** The hidden state of one token: what a hop between stages carries. */
  hiddenBytesPerToken: number;
  /** What the last stage sends back to the first per token (a sampled token id). */
  tokenBytes: number;
  embedding: { weightBytes: number; bytesReadPerToken: number };
  head: {
    /** Final norm, plus the output matrix when it is not tied to the embedding. */
    weightBytes: number;
    /** The output matrix when tied: held by the last stage too unless it is also the first. */
    tiedMatrixBytes: number;
    flopsPerToken: number;
    bytesReadPerToken: number;
    /** Logits buffer of one token. */
    logitsBytes: number;
  };
}

/** Derives the per-layer cost profile from a model's shape alone (no weights needed). */
export function modelProfile(shape: ModelShape): ModelProfile {
  validateModelShape(shape);
  const h = shape.hiddenSize;
  const bw = shape.bytesPerWeight;
  const ba = shape.bytesPerActivation ?? 4;
  const qDim = shape.numHeads * shape.headDim;
  const kvDim = shape.numKvHeads * shape.headDim;
  const matrixParams = h * qDim + 2 * h * kvDim + qDim * h + 3 * h * shape.intermediateSize;
  // Norm weights (and biases) stay in float32 in every format the runtime reads.
  const vectorParams = 2 * h + (shape.attentionBias ? qDim + 2 * kvDim : 0);
  const layer: LayerCost = {
    flopsPerToken: 2 * matrixParams,
    attentionFlopsPerContextToken: 4 * qDim,
    weightBytes: matrixParams * bw + vectorParams * 4,
    kvBytesPerToken: 2 * kvDim * (shape.bytesPerKvValue ?? ba),
    activationBytesPerToken: (3 * h + qDim + 2 * kvDim + 2 * shape.intermediateSize) * ba,
  };
  const embeddingBytes = shape.vocabSize * h * bw;
  return {
    name: shape.name ?? 'model',
    numLayers: shape.numLayers,
    layers: Array.from({ length: shape.numLayers }, () => ({ ...layer })),
    hiddenBytesPerToken: h * ba,
    tokenBytes: 4,
    embedding: { weightBytes: embeddingBytes, bytesReadPerToken: h * bw },
    head: {
      weightBytes: h * 4 + (shape.tiedEmbeddings ? 0 : embeddingBytes),
      tiedMatrixBytes: shape.tiedEmbeddings ? embeddingBytes : 0,
      flopsPerToken: 2 * shape.vocabSize * h,
      bytesReadPerToken: embeddingBytes + h * 4,
      logitsBytes: shape.vocabSize * 4,
    },
  };
}

/** Total weight bytes of the model (each matrix once). */
export function modelWeightBytes(p: ModelProfile): number {
  let s = p.embedding.weightBytes + p.head.weightBytes;
  for (const l of p.layers) s += l.weightBytes;
  return s;
}
