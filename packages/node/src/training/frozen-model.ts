import type { WeightMatrix } from '@edge-node/kernels';
import type { RopeLayout } from '../model/model-file.js';
import type { ModelConfig } from '../model/model-config.js';
import { ropeFrequencies } from '../engine/rope.js';
import type { LayerWeights, ModelEnds, ShardWeights } from '../engine/shard-weights.js';
import { JS_GEMM, type FrozenMatrix, type Gemm } from './gemm.js';
import type { RopePairs } from './rope-grad.js';
import type { Vec } from './vec.js';

/** What the training math needs of a model's shape. */
export interface TrainShape {
  hidden: number;
  ffn: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  eps: number;
  ropeFreqs: Float64Array;
  ropePairs: RopePairs;
}

/** One layer's frozen weights as f32: matrices [out, in], norms, and Qwen2's q/k/v biases (or null). */
export interface FrozenLayer {
  attnNorm: Vec;
  wq: FrozenMatrix;
  wk: FrozenMatrix;
  wv: FrozenMatrix;
  wo: FrozenMatrix;
  bias: { q: Vec; k: Vec; v: Vec } | null;
  ffnNorm: Vec;
  wgate: FrozenMatrix;
  wup: FrozenMatrix;
  wdown: FrozenMatrix;
}

/** A contiguous range of layers' frozen weights (what a stage trains through), and what multiplies them. */
export interface FrozenRange {
  shape: TrainShape;
  gemm: Gemm;
  layers: FrozenLayer[];
}

/** The model's ends, what the data's owner keeps: the embeddings, the final norm and the head. */
export interface FrozenEnds {
  shape: TrainShape;
  gemm: Gemm;
  embedding: Vec;
  outNorm: Vec;
  head: FrozenMatrix;
}

/** The whole model's frozen weights as f32 (the function the adapter is trained through), and what multiplies them. */
export interface FrozenModel extends FrozenRange, FrozenEnds {}

export function trainShape(config: ModelConfig, ropeLayout: RopeLayout): TrainShape {
  return {
    hidden: config.hiddenSize,
    ffn: config.intermediateSize,
    heads: config.numHeads,
    kvHeads: config.numKvHeads,
    headDim: config.headDim,
    vocab: config.vocabSize,
    eps: config.rmsNormEps,
    ropeFreqs: ropeFrequencies(config),
    ropePairs: ropeLayout,
  };
}

/** Rows of a matrix dequantised per kernel call: the scratch it needs stays small whatever the matrix. */
const DEQUANT_ROWS = 64;

/**
 * W's blocks → f32 [rows, cols] with the kernels' own `dequant` (every type the engine multiplies), a tile of rows at a
 * time through a scratch block of W's arena. Done once per job: the weights are frozen, so the f32 copy never changes.
 */
export function dequantiseMatrix(w: WeightMatrix): Float32Array {
  const out = new Float32Array(w.rows * w.cols);
  const tile = Math.min(DEQUANT_ROWS, w.rows);
  const scratch = w.arena.alloc(tile * w.cols * 4);
  try {
    for (let r0 = 0; r0 < w.rows; r0 += tile) {
      const n = Math.min(tile, w.rows - r0);
      for (let i = 0; i < n; i++) w.arena.kernels.dequant(w.type.id, w.ptr + (r0 + i) * w.rowBytes, scratch + i * w.cols * 4, w.cols);
      out.set(w.arena.f32(scratch, n * w.cols), r0 * w.cols);
    }
  } finally {
    w.arena.release(scratch);
  }
  return out;
}

function copyF32(l: LayerWeights, ptr: number, n: number): Float32Array {
  return l.arena.f32(ptr, n).slice();
}

/** How a matrix of the file becomes a FrozenMatrix: its f32 copy on a Gemm, or its own blocks (quantised-frozen.ts). */
export type Freeze = (w: WeightMatrix) => FrozenMatrix;

function frozenLayer(l: LayerWeights, c: ModelConfig, frozen: Freeze): FrozenLayer {
  const kvDim = c.numKvHeads * c.headDim;
  return {
    attnNorm: copyF32(l, l.attnNorm, c.hiddenSize),
    wq: frozen(l.wq),
    wk: frozen(l.wk),
    wv: frozen(l.wv),
    wo: frozen(l.wo),
    bias: l.bq ? { q: copyF32(l, l.bq, c.numHeads * c.headDim), k: copyF32(l, l.bk, kvDim), v: copyF32(l, l.bv, kvDim) } : null,
    ffnNorm: copyF32(l, l.ffnNorm, c.hiddenSize),
    wgate: frozen(l.wgate),
    wup: frozen(l.wup),
    wdown: frozen(l.wdown),
  };
}

export class NotWholeModelError extends Error {
  override name = 'NotWholeModelError';
}

/** A shard's layers for training (any range; a pipeline stage's), frozen as frozenModel freezes them. */
export function frozenRange(weights: ShardWeights, ropeLayout: RopeLayout, gemm: Gemm = JS_GEMM, freeze?: Freeze): FrozenRange {
  const frozen: Freeze = freeze ?? ((w) => gemm.frozen(dequantiseMatrix(w), w.rows, w.cols));
  return { shape: trainShape(weights.config, ropeLayout), gemm, layers: weights.layers.map((l) => frozenLayer(l, weights.config, frozen)) };
}

/** The model's ends (model-ends.ts's weights) for the data's owner: the embeddings and norm as f32, the head frozen by `freeze`. */
export function frozenEnds(ends: ModelEnds, config: ModelConfig, ropeLayout: RopeLayout, gemm: Gemm = JS_GEMM, freeze?: Freeze): FrozenEnds {
  const frozen: Freeze = freeze ?? ((w) => gemm.frozen(dequantiseMatrix(w), w.rows, w.cols));
  return {
    shape: trainShape(config, ropeLayout),
    gemm,
    embedding: dequantiseMatrix(ends.embedding),
    outNorm: ends.head.arena.f32(ends.outNorm, config.hiddenSize).slice(),
    head: frozen(ends.head),
  };
}

/**
 * A whole model's shard (every layer, the embeddings and the head) for training: norms and embeddings copied to f32,
 * the matrices frozen by `freeze` (default: their f32 copies on `gemm`), which also multiplies the adapter.
 */
export function frozenModel(weights: ShardWeights, ropeLayout: RopeLayout, gemm: Gemm = JS_GEMM, freeze?: Freeze): FrozenModel {
  const frozen: Freeze = freeze ?? ((w) => gemm.frozen(dequantiseMatrix(w), w.rows, w.cols));
  const c = weights.config;
  if (!weights.embedding || !weights.head || weights.range.startLayer !== 0 || weights.range.endLayer !== c.numLayers) {
    throw new NotWholeModelError('training on one device needs the whole model: every layer, the embeddings and the head');
  }
  const head = weights.head;
  return {
    shape: trainShape(c, ropeLayout),
    gemm,
    embedding: dequantiseMatrix(weights.embedding),
    layers: weights.layers.map((l) => frozenLayer(l, c, frozen)),
    outNorm: head.arena.f32(weights.outNorm, c.hiddenSize).slice(),
    head: frozen(head),
  };
}
