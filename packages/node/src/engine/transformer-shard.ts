import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../model/model-config.js';
import { KvCache } from './kv-cache.js';
import { ropeFrequencies, ropePartners, ropeTables } from './rope.js';
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
  private readonly ropePartner: tf.Tensor1D;
  private readonly qDim: number;
  private readonly kvDim: number;

  constructor(private readonly weights: ShardWeights) {
    this.config = weights.config;
    this.range = weights.range;
    this.isFirst = weights.range.startLayer === 0;
    this.isLast = weights.range.endLayer === weights.config.numLayers;
    const c = this.config;
    this.qDim = c.numHeads * c.headDim;
    this.kvDim = c.numKvHeads * c.headDim;
    this.freqs = ropeFrequencies(c);
    // Q and K are roped together as one [n, qDim + kvDim] block: their heads side by side.
    this.ropePartner = tf.tensor1d(ropePartners(c.numHeads + c.numKvHeads, c.headDim), 'int32');
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

    const out = tf.tidy(() => {
      let x = this.embed(input, n); // [n, H]
      const { cos, sin } = ropeTables(this.freqs, c.numHeads + c.numKvHeads, c.headDim, start, n);
      const ropeCos = tf.tensor2d(cos, [n, this.qDim + this.kvDim]);
      const ropeSin = tf.tensor2d(sin, [n, this.qDim + this.kvDim]);
      const mask = n > 1 ? causalMask(n, start, c.numHeads / c.numKvHeads) : null;

      for (let l = 0; l < this.weights.layers.length; l++) {
        const w = this.weights.layers[l];
        // Attention block: RMSNorm (its weight lives in wqkv) → Q,K,V → RoPE → attend over the cache → output proj.
        const h = rmsNorm(x, c.rmsNormEps);
        const qkv = w.bqkv ? tf.add(tf.matMul(h, w.wqkv), w.bqkv) : tf.matMul(h, w.wqkv);
        const [qk, v] = tf.split(qkv, [this.qDim + this.kvDim, this.kvDim], 1);
        const qkRoped = tf.add(tf.mul(qk, ropeCos), tf.mul(tf.gather(qk, this.ropePartner, 1), ropeSin));
        const [q, k] = tf.split(qkRoped, [this.qDim, this.kvDim], 1);
        const attn = this.attend(l, q as tf.Tensor2D, k as tf.Tensor2D, v as tf.Tensor2D, n, cache, mask);
        x = tf.add(x, tf.matMul(attn, w.wo));

        // Feed-forward block: RMSNorm (folded into wgateUp) → SwiGLU → down projection.
        const h2 = rmsNorm(x, c.rmsNormEps);
        const [gate, up] = tf.split(tf.matMul(h2, w.wgateUp), 2, 1);
        const act = tf.mul(tf.mul(gate, tf.sigmoid(gate)), up);
        x = tf.add(x, tf.matMul(act, w.wdown));
      }

      if (!this.isLast) return x;
      // Final norm (folded into the head) and the output head; by default only the last position's logits.
      const rows = opts.allLogits ? x : n === 1 ? x : tf.slice(x, [n - 1, 0], [1, c.hiddenSize]);
      return tf.matMul(rmsNorm(rows, c.rmsNormEps), this.weights.head!);
    });

    cache.length = start + n;
    const data = out.dataSync() as Float32Array;
    const rows = out.shape[0];
    out.dispose();
    return this.isLast ? { kind: 'logits', logits: data, rows } : { kind: 'hidden', hidden: data, n };
  }

  /**
   * Causal grouped-query attention of n new queries over all T cached positions.
   * Queries are regrouped to [kvHeads, g·n, d] so each KV head serves its g query heads in one batched matMul.
   */
  private attend(layer: number, q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, n: number, cache: KvCache, mask: tf.Tensor2D | null): tf.Tensor2D {
    const c = this.config;
    const kvH = c.numKvHeads;
    const d = c.headDim;
    const g = c.numHeads / kvH;
    // With n = 1 every transpose below only moves a size-1 axis, so a reshape does the same without a copy.
    const single = n === 1;
    const kT = single ? tf.reshape(k, [kvH, d, 1]) : tf.transpose(tf.reshape(k, [n, kvH, d]), [1, 2, 0]);
    const vNew = single ? tf.reshape(v, [kvH, 1, d]) : tf.transpose(tf.reshape(v, [n, kvH, d]), [1, 0, 2]);
    const cached = cache.append(layer, kT as tf.Tensor3D, vNew as tf.Tensor3D);

    const qg = single ? tf.reshape(q, [kvH, g, d]) : tf.reshape(tf.transpose(tf.reshape(q, [n, kvH, g, d]), [1, 2, 0, 3]), [kvH, g * n, d]);
    let scores = tf.matMul(qg, cached.kT); // [kvH, g·n, T]; 1/sqrt(d) is folded into Q
    if (mask) scores = tf.add(scores, mask);
    const probs = tf.softmax(scores);
    const o = tf.matMul(probs, cached.v); // [kvH, g·n, d]
    return single
      ? tf.reshape(o, [1, c.numHeads * d])
      : tf.reshape(tf.transpose(tf.reshape(o, [kvH, g, n, d]), [2, 0, 1, 3]), [n, c.numHeads * d]);
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
    this.ropePartner.dispose();
  }
}

/** x / sqrt(mean(x²) + eps), row-wise; the learned scale is folded into the next matrix. */
function rmsNorm(x: tf.Tensor2D, eps: number): tf.Tensor2D {
  return tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), 1, true), eps)));
}

/**
 * Additive mask for n queries starting at position `start`, laid out as rows (group, query) to match the
 * [kvHeads, g·n, T] score tensor: query i may see positions ≤ start + i.
 */
function causalMask(n: number, start: number, g: number): tf.Tensor2D {
  const T = start + n;
  const m = new Float32Array(g * n * T);
  for (let gi = 0; gi < g; gi++) {
    for (let i = 0; i < n; i++) {
      const row = (gi * n + i) * T;
      for (let t = start + i + 1; t < T; t++) m[row + t] = -Infinity;
    }
  }
  return tf.tensor2d(m, [g * n, T]);
}
