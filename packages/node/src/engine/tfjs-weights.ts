import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../model/model-config.js';
import type { ModelFile } from '../model/model-file.js';
import { ModelFileError } from '../model/model-errors.js';
import { checkLayerRange, type LayerRange } from './layer-range.js';
import { checkTfjsWeightTypes } from './tfjs-weight-types.js';

/**
 * One layer's weights as tfjs F32 tensors. Matrices are stored [in, out] (the file's [out, in] transposed once at
 * load), so that rows of activations multiply them directly: tfjs-wasm is several times slower with a transposed
 * operand.
 */
export interface TfjsLayerWeights {
  attnNorm: tf.Tensor1D;
  wq: tf.Tensor2D;
  wk: tf.Tensor2D;
  wv: tf.Tensor2D;
  /** q, k, v biases (Qwen2), or null. */
  bq: tf.Tensor1D | null;
  bk: tf.Tensor1D | null;
  bv: tf.Tensor1D | null;
  wo: tf.Tensor2D;
  ffnNorm: tf.Tensor1D;
  wgate: tf.Tensor2D;
  wup: tf.Tensor2D;
  wdown: tf.Tensor2D;
}

export interface TfjsShardWeights {
  config: ModelConfig;
  range: LayerRange;
  /** Token embeddings [vocab, hidden] as a plain array (a lookup is a row copy); first stage only. */
  embedding: Float32Array | null;
  layers: TfjsLayerWeights[];
  /** Final norm and output head [hidden, vocab]; last stage only. */
  outNorm: tf.Tensor1D | null;
  head: tf.Tensor2D | null;
  /** Bytes of weights held (F32). */
  weightBytes: number;
}

/**
 * Reads only the tensors of layers [startLayer, endLayer) — plus the embeddings on the first stage and the final
 * norm and head on the last — dequantised to F32 (F16 and BF16 widen exactly). Quantised files are refused before
 * anything is read.
 */
export async function loadTfjsWeights(model: ModelFile, range: LayerRange): Promise<TfjsShardWeights> {
  const c = model.config;
  checkLayerRange(range, c.numLayers);
  checkTfjsWeightTypes(model);
  const held: tf.Tensor[] = [];
  const read = async (name: string, expected: number): Promise<Float32Array> => {
    if (!model.tensors.has(name)) throw new ModelFileError(model.path, `tensor ${name} is missing`);
    const data = await model.readTensor(name);
    if (data.length !== expected) throw new ModelFileError(model.path, `tensor ${name} has ${data.length} values, expected ${expected} for this config`);
    return data;
  };
  const vector = async (name: string, n: number): Promise<tf.Tensor1D> => keep(tf.tensor1d(await read(name, n)));
  // The file's [out, in] as [in, out], transposed in JS: only the final matrix enters the wasm heap (which never
  // shrinks), not a copy of the file's layout as well.
  const matrix = async (name: string, out: number, inDim: number): Promise<tf.Tensor2D> => {
    const data = await read(name, out * inDim);
    const t = new Float32Array(data.length);
    for (let o = 0; o < out; o++) for (let i = 0; i < inDim; i++) t[i * out + o] = data[o * inDim + i];
    return keep(tf.tensor2d(t, [inDim, out]));
  };
  const keep = <T extends tf.Tensor>(t: T): T => {
    held.push(t);
    return t;
  };

  const H = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const F = c.intermediateSize;
  const isFirst = range.startLayer === 0;
  const isLast = range.endLayer === c.numLayers;
  try {
    const layers: TfjsLayerWeights[] = [];
    for (let l = range.startLayer; l < range.endLayer; l++) {
      const p = `blk.${l}.`;
      layers.push({
        attnNorm: await vector(`${p}attn_norm.weight`, H),
        wq: await matrix(`${p}attn_q.weight`, qDim, H),
        wk: await matrix(`${p}attn_k.weight`, kvDim, H),
        wv: await matrix(`${p}attn_v.weight`, kvDim, H),
        bq: c.attentionBias ? await vector(`${p}attn_q.bias`, qDim) : null,
        bk: c.attentionBias ? await vector(`${p}attn_k.bias`, kvDim) : null,
        bv: c.attentionBias ? await vector(`${p}attn_v.bias`, kvDim) : null,
        wo: await matrix(`${p}attn_output.weight`, H, qDim),
        ffnNorm: await vector(`${p}ffn_norm.weight`, H),
        wgate: await matrix(`${p}ffn_gate.weight`, F, H),
        wup: await matrix(`${p}ffn_up.weight`, F, H),
        wdown: await matrix(`${p}ffn_down.weight`, H, F),
      });
    }
    const embedding = isFirst ? await read('token_embd.weight', c.vocabSize * H) : null;
    const outNorm = isLast ? await vector('output_norm.weight', H) : null;
    const head = isLast ? await matrix(c.tiedEmbeddings ? 'token_embd.weight' : 'output.weight', c.vocabSize, H) : null;
    const weightBytes = held.reduce((s, t) => s + t.size * 4, 0) + (embedding?.byteLength ?? 0);
    return { config: c, range: { ...range }, embedding, layers, outNorm, head, weightBytes };
  } catch (err) {
    for (const t of held) t.dispose();
    throw err;
  }
}

export function disposeTfjsWeights(w: TfjsShardWeights): void {
  for (const l of w.layers) for (const t of Object.values(l)) (t as tf.Tensor | null)?.dispose();
  w.outNorm?.dispose();
  w.head?.dispose();
  w.layers = [];
  w.outNorm = null;
  w.head = null;
  w.embedding = null;
}
