import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../model/model-config.js';
import { causalSoftmaxColumns, mergeHeads, rmsNorm, ropeSplitQkv, swiGlu, type HeadSplit } from './fused-kernels.js';
import { KvCache } from './kv-cache.js';
import { ropeFrequencies, ropeTables } from './rope.js';
import type { LayerRange, ShardWeights } from './shard-loader.js';

/** What enters a shard: token ids on the first stage, hidden states ([n, hidden], row-major) on the others. */
export type ShardInput = { kind: 'tokens'; tokens: ArrayLike<number> } | { kind: 'hidden'; hidden: Float32Array; n: number };

/** What leaves it: hidden states for the next stage, or logits on the last stage. */
export type ShardOutput = { kind: 'hidden'; hidden: Float32Array; n: number } | { kind: 'logits'; logits: Float32Array; rows: number };

/** A request that would run past the context this cache may hold. */
export class ContextLengthError extends Error {
  override name = 'ContextLengthError';
  constructor(
    readonly requested: number,
    readonly limit: number,
  ) {
    super(`this request needs ${requested} positions but the context limit is ${limit} tokens`);
  }
}

export class ShardInputError extends Error {
  override name = 'ShardInputError';
}

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
    return new KvCache(this.range.endLayer - this.range.startLayer, this.config.numKvHeads, contextLength);
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

    const out = tf.tidy(() => {
      let x: tf.Tensor2D = this.embed(input, n); // [n, H]
      const rope = ropeTables(this.freqs, c.numHeads + c.numKvHeads, c.headDim, start, n);

      for (let l = 0; l < this.weights.layers.length; l++) {
        const w = this.weights.layers[l];
        // Attention block: RMSNorm (its weight lives in wqkv) → Q,K,V → RoPE → attend over the cache → output proj.
        const h = rmsNorm(x, c.rmsNormEps);
        const qkv: tf.Tensor2D = w.bqkv ? tf.add(tf.matMul(h, w.wqkv), w.bqkv) : tf.matMul(h, w.wqkv);
        const heads = ropeSplitQkv(qkv, rope, c.numKvHeads, this.group, c.headDim);
        const attn = this.attend(l, heads, n, start, cache);
        x = tf.add(x, tf.matMul(attn, w.wo));

        // Feed-forward block: RMSNorm (folded into wgateUp) → SwiGLU → down projection.
        const h2 = rmsNorm(x, c.rmsNormEps);
        x = tf.add(x, tf.matMul(swiGlu(tf.matMul(h2, w.wgateUp)), w.wdown));
      }

      if (!this.isLast) return x;
      // Final norm (folded into the head) and the output head; by default only the last position's logits.
      const rows = opts.allLogits || n === 1 ? x : tf.slice(x, [n - 1, 0], [1, c.hiddenSize]);
      return tf.matMul(rmsNorm(rows, c.rmsNormEps), this.weights.head!);
    });

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
  private attend(layer: number, heads: HeadSplit, n: number, start: number, cache: KvCache): tf.Tensor2D {
    const outputsT: tf.Tensor2D[] = [];
    for (let h = 0; h < this.config.numKvHeads; h++) {
      const { keys, valuesT } = cache.append(layer, h, heads.keys[h], heads.valuesT[h]);
      const scoresT: tf.Tensor2D = tf.matMul(keys, heads.queriesT[h]); // [T, g·n]
      const probsT = causalSoftmaxColumns(scoresT, n, start); // [T, g·n]
      outputsT.push(tf.matMul(valuesT, probsT) as tf.Tensor2D); // [d, g·n]
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
