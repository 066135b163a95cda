import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../model/model-config.js';
import type { ModelFile } from '../model/model-file.js';
import { ModelFileError } from '../model/model-errors.js';

/** A contiguous range of transformer layers, [startLayer, endLayer). */
export interface LayerRange {
  startLayer: number;
  endLayer: number;
}

/**
 * One layer's weights, laid out for the fast path: every matrix is [in, out] so that a token's row vector multiplies
 * it directly (tfjs-wasm is 4-8x slower with transposed operands), and the work is fused into as few kernels as
 * possible — this is what makes per-token dispatch overhead small next to the matmuls.
 *  - the RMSNorm weights are folded into the rows of the matrix that follows the norm;
 *  - Q, K and V are one matrix [hidden, qDim + 2·kvDim]; the attention scale 1/sqrt(headDim) is folded into Q;
 *  - gate and up are one matrix [hidden, 2·ffn].
 */
export interface LayerWeights {
  wqkv: tf.Tensor2D;
  bqkv: tf.Tensor1D | null;
  wo: tf.Tensor2D;
  wgateUp: tf.Tensor2D;
  wdown: tf.Tensor2D;
}

export interface ShardWeights {
  config: ModelConfig;
  range: LayerRange;
  /** Token embeddings [vocab, hidden] as a plain array (a lookup is a row copy); only on the first stage. */
  embedding: Float32Array | null;
  layers: LayerWeights[];
  /** Output head [hidden, vocab] with the final norm folded in; only on the last stage. */
  head: tf.Tensor2D | null;
  /** Bytes of weights this shard holds (tensors + embedding array). */
  weightBytes: number;
}

/** A requested layer range that does not fit the model. */
export class LayerRangeError extends Error {
  override name = 'LayerRangeError';
}

/**
 * Reads only the tensors of layers [startLayer, endLayer) — plus the embeddings when the range starts at 0 and the
 * final norm and head when it ends at the last layer — and lays them out for the engine. Nothing else of the file is read.
 */
export async function loadShard(model: ModelFile, range: LayerRange): Promise<ShardWeights> {
  const c = model.config;
  const { startLayer, endLayer } = range;
  if (!Number.isInteger(startLayer) || !Number.isInteger(endLayer) || startLayer < 0 || endLayer > c.numLayers || startLayer >= endLayer) {
    throw new LayerRangeError(`layer range [${startLayer}, ${endLayer}) is not inside the model's ${c.numLayers} layers`);
  }
  const read = async (name: string, expected: number): Promise<Float32Array> => {
    const info = model.tensors.get(name);
    if (!info) throw new ModelFileError(model.path, `tensor ${name} is missing`);
    const data = await model.readTensor(name);
    if (data.length !== expected) {
      throw new ModelFileError(model.path, `tensor ${name} has ${data.length} values, expected ${expected} for this config`);
    }
    return data;
  };

  const H = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const F = c.intermediateSize;
  const qScale = 1 / Math.sqrt(c.headDim);
  const qRows = model.ropeLayout === 'interleaved' ? interleavedToHalf(c.numHeads, c.headDim) : null;
  const kRows = model.ropeLayout === 'interleaved' ? interleavedToHalf(c.numKvHeads, c.headDim) : null;

  const layers: LayerWeights[] = [];
  let weightBytes = 0;
  for (let l = startLayer; l < endLayer; l++) {
    const p = `blk.${l}.`;
    const attnNorm = await read(`${p}attn_norm.weight`, H);
    const ffnNorm = await read(`${p}ffn_norm.weight`, H);

    const wqkv = new Float32Array(H * (qDim + 2 * kvDim));
    const cols = qDim + 2 * kvDim;
    placeTransposed(wqkv, cols, 0, await read(`${p}attn_q.weight`, qDim * H), qDim, H, qRows, qScale, attnNorm);
    placeTransposed(wqkv, cols, qDim, await read(`${p}attn_k.weight`, kvDim * H), kvDim, H, kRows, 1, attnNorm);
    placeTransposed(wqkv, cols, qDim + kvDim, await read(`${p}attn_v.weight`, kvDim * H), kvDim, H, null, 1, attnNorm);

    let bqkv: tf.Tensor1D | null = null;
    if (c.attentionBias) {
      const b = new Float32Array(cols);
      permuteInto(b, 0, await read(`${p}attn_q.bias`, qDim), qRows, qScale);
      permuteInto(b, qDim, await read(`${p}attn_k.bias`, kvDim), kRows, 1);
      permuteInto(b, qDim + kvDim, await read(`${p}attn_v.bias`, kvDim), null, 1);
      bqkv = tf.tensor1d(b);
    }

    const wo = new Float32Array(qDim * H);
    placeTransposed(wo, H, 0, await read(`${p}attn_output.weight`, H * qDim), H, qDim, null, 1, null);

    const wgateUp = new Float32Array(H * 2 * F);
    placeTransposed(wgateUp, 2 * F, 0, await read(`${p}ffn_gate.weight`, F * H), F, H, null, 1, ffnNorm);
    placeTransposed(wgateUp, 2 * F, F, await read(`${p}ffn_up.weight`, F * H), F, H, null, 1, ffnNorm);

    const wdown = new Float32Array(F * H);
    placeTransposed(wdown, H, 0, await read(`${p}ffn_down.weight`, H * F), H, F, null, 1, null);

    layers.push({
      wqkv: tf.tensor2d(wqkv, [H, cols]),
      bqkv,
      wo: tf.tensor2d(wo, [qDim, H]),
      wgateUp: tf.tensor2d(wgateUp, [H, 2 * F]),
      wdown: tf.tensor2d(wdown, [F, H]),
    });
    weightBytes += (wqkv.length + wo.length + wgateUp.length + wdown.length + (bqkv ? cols : 0)) * 4;
  }

  const isFirst = startLayer === 0;
  const isLast = endLayer === c.numLayers;
  let embedding: Float32Array | null = null;
  if (isFirst) {
    embedding = await read('token_embd.weight', c.vocabSize * H);
    weightBytes += embedding.byteLength;
  }
  let head: tf.Tensor2D | null = null;
  if (isLast) {
    const outNorm = await read('output_norm.weight', H);
    const source = c.tiedEmbeddings ? (embedding ?? (await read('token_embd.weight', c.vocabSize * H))) : await read('output.weight', c.vocabSize * H);
    const w = new Float32Array(H * c.vocabSize);
    placeTransposed(w, c.vocabSize, 0, source, c.vocabSize, H, null, 1, outNorm);
    head = tf.tensor2d(w, [H, c.vocabSize]);
    weightBytes += w.byteLength;
  }
  return { config: c, range: { startLayer, endLayer }, embedding, layers, head, weightBytes };
}

export function disposeShard(shard: ShardWeights): void {
  for (const l of shard.layers) {
    l.wqkv.dispose();
    l.bqkv?.dispose();
    l.wo.dispose();
    l.wgateUp.dispose();
    l.wdown.dispose();
  }
  shard.head?.dispose();
  shard.layers = [];
  shard.head = null;
  shard.embedding = null;
}

/**
 * Writes W (stored [out, in], as PyTorch and GGUF keep it) transposed into columns [colOffset, colOffset + out) of a
 * row-major [in, cols] matrix. Optionally reorders the out-rows (RoPE layout), scales them (attention scale) and
 * scales the in-rows by a norm weight (folding `x·diag(g)·W` into `x·W'`).
 */
function placeTransposed(
  dst: Float32Array,
  cols: number,
  colOffset: number,
  w: Float32Array,
  out: number,
  inDim: number,
  rowOrder: Int32Array | null,
  outScale: number,
  inScale: Float32Array | null,
): void {
  for (let o = 0; o < out; o++) {
    const src = (rowOrder ? rowOrder[o] : o) * inDim;
    const col = colOffset + o;
    for (let i = 0; i < inDim; i++) {
      dst[i * cols + col] = w[src + i] * outScale * (inScale ? inScale[i] : 1);
    }
  }
}

function permuteInto(dst: Float32Array, offset: number, src: Float32Array, order: Int32Array | null, scale: number): void {
  for (let o = 0; o < src.length; o++) dst[offset + o] = src[order ? order[o] : o] * scale;
}

/**
 * Row order that turns interleaved-pair RoPE rows (GGUF llama, llama2.c: pairs 2i, 2i+1) into rotate_half rows
 * (pairs i, i + d/2): new row h·d + j·d/2 + i comes from old row h·d + 2i + j. Q·K is unchanged because Q and K are
 * permuted alike, so the attention scores are exactly the file's.
 */
export function interleavedToHalf(heads: number, headDim: number): Int32Array {
  const half = headDim / 2;
  const order = new Int32Array(heads * headDim);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < 2; j++) {
      for (let i = 0; i < half; i++) order[h * headDim + j * half + i] = h * headDim + 2 * i + j;
    }
  }
  return order;
}
