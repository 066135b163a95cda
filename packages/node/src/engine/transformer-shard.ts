import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../model/model-config.js';
import { addRmsNorm, attentionInputs, causalSoftmaxColumns, mergeHeads, rmsNorm, swiGlu, type AttentionInputs } from './fused-kernels.js';
import { KvCache } from './tfjs-kv-cache.js';
import { ropeFrequencies, ropeTables } from './rope.js';
import type { LayerRange, ShardWeights } from './shard-loader.js';
import { ContextLengthError, ShardInputError, type ShardInput, type ShardOutput } from './forward-shard.js';

/**
 * A contiguous range of a Llama/Qwen2 transformer's layers, run with tfjs kernels. The whole forward pass is
 * `forward` below; read it top to bottom next to llama2.c's run.c. Shapes: n = tokens in this call,
 * H = hidden size, T = positions in the cache after this call, g = query heads per KV head (GQA).
 */
export class TransformerShard {
  readonly config: ModelConfig;
  readonly range: LayerRange;
  readonly isFirst: boolean;
  readonly isLast: boolean;
  private readonly freqs: Float64Array;
  /** Query heads per KV head (grouped-query attention). */
  private readonly group: number;

  constructor(private readonly weights: ShardWeights) {
    this.config = weights.config;
    this.range = weights.range;
    this.isFirst = weights.range.startLayer === 0;
    this.isLast = weights.range.endLayer === weights.config.numLayers;
    this.freqs = ropeFrequencies(this.config);
    this.group = this.config.numHeads / this.config.numKvHeads;
  }

  get weightBytes(): number {
    return this.weights.weightBytes;
  }

  /** A fresh KV cache for one request on this shard, limited to `contextLength` positions. */
  createCache(contextLength = this.config.contextLength): KvCache {
    return new KvCache(this.range.endLayer - this.range.startLayer, contextLength);
  }

  /**
   * Runs n new positions (continuing at cache.length) through this shard's layers and appends them to the cache.
   * The last stage returns logits for the last position only, or for every position with `allLogits`.
   */
  forward(input: ShardInput, cache: KvCache, opts: { allLogits?: boolean } = {}): ShardOutput {
    const c = this.config;
    const n = input.kind === 'tokens' ? input.tokens.length : input.n;
    const start = cache.length;
    if (n < 1) throw new ShardInputError('a forward pass needs at least one position');
    if (start + n > cache.capacity) throw new ContextLengthError(start + n, cache.capacity);

    let out: tf.Tensor2D;
    try {
      out = tf.tidy(() => {
        let x = this.embed(input, n); // [n, H], the residual stream
        let h = rmsNorm(x, c.rmsNormEps); // the normalised input of the next block (norm weights live in the matrices)
        const rope = ropeTables(this.freqs, c.numHeads + c.numKvHeads, c.headDim, start, n);

        for (let l = 0; l < this.weights.layers.length; l++) {
          const w = this.weights.layers[l];
          // Attention block: Q,K,V in one matmul → RoPE, append K and V to the cache → attend → output projection.
          const qkv: tf.Tensor2D = w.bqkv ? tf.add(tf.matMul(h, w.wqkv), w.bqkv) : tf.matMul(h, w.wqkv);
          const cached = cache.layer(l);
          const heads = attentionInputs(qkv, rope, c.numKvHeads, this.group, c.headDim, cached.keys, cached.valuesT);
          cache.replace(l, heads.keys, heads.valuesT);
          const attn = this.attend(heads, n, start);
          let h2: tf.Tensor2D;
          [x, h2] = addRmsNorm(x, tf.matMul(attn, w.wo), c.rmsNormEps);

          // Feed-forward block: gate and up in one matmul → SwiGLU → down projection.
          [x, h] = addRmsNorm(x, tf.matMul(swiGlu(tf.matMul(h2, w.wgateUp)), w.wdown), c.rmsNormEps);
        }

        // A middle stage hands on the residual stream; the last applies the head to its final norm (folded in).
        if (!this.isLast) return x;
        const rows = opts.allLogits || n === 1 ? h : tf.slice(h, [n - 1, 0], [1, c.hiddenSize]);
        return tf.matMul(rows, this.weights.head!);
      });
    } catch (err) {
      // Some layers may already hold this call's positions: a half-updated cache must not be used again.
      cache.clear();
      throw err;
    }
    cache.length = start + n;
    const data = out.dataSync() as Float32Array;
    const rows = out.shape[0];
    out.dispose();
    return this.isLast ? { kind: 'logits', logits: data, rows } : { kind: 'hidden', hidden: data, n };
  }

  /**
   * Causal grouped-query attention of n new queries over all T cached positions, one KV head at a time: the g query
   * heads sharing a KV head go together as the g·n columns of one matMul. 1/sqrt(d) is already folded into Q.
   */
  private attend(heads: AttentionInputs, n: number, start: number): tf.Tensor2D {
    const outputsT: tf.Tensor2D[] = [];
    for (let kv = 0; kv < this.config.numKvHeads; kv++) {
      const scoresT: tf.Tensor2D = tf.matMul(heads.keys[kv], heads.queriesT[kv]); // [T, g·n]
      const probsT = causalSoftmaxColumns(scoresT, n, start); // [T, g·n]
      outputsT.push(tf.matMul(heads.valuesT[kv], probsT)); // [d, g·n]
    }
    return mergeHeads(outputsT, n, this.group); // [n, heads·d]
  }

  private embed(input: ShardInput, n: number): tf.Tensor2D {
    const H = this.config.hiddenSize;
    if (input.kind === 'hidden') {
      if (this.isFirst) throw new ShardInputError('the first stage takes token ids, not hidden states');
      if (input.hidden.length !== n * H) throw new ShardInputError(`hidden states have ${input.hidden.length} values, expected ${n} × ${H}`);
      return tf.tensor2d(input.hidden, [n, H]);
    }
    const table = this.weights.embedding;
    if (!table) throw new ShardInputError(`layers [${this.range.startLayer}, ${this.range.endLayer}) take hidden states, not token ids`);
    const rows = new Float32Array(n * H);
    for (let i = 0; i < n; i++) {
      const id = input.tokens[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) {
        throw new ShardInputError(`token id ${id} is outside the vocabulary (0..${this.config.vocabSize - 1})`);
      }
      rows.set(table.subarray(id * H, (id + 1) * H), i * H);
    }
    return tf.tensor2d(rows, [n, H]);
  }

  dispose(): void {
    // Weights are owned by ShardWeights (disposeShard); nothing else is held here.
  }
}
