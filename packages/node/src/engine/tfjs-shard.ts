import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../model/model-config.js';
import type { RopeLayout } from '../model/model-file.js';
import { checkShardInput, ShardInputError, type BatchItem, type ForwardShard, type LogitsWanted, type ShardInput, type ShardKvCache, type ShardOutput } from './forward-shard.js';
import { ComputeSlices, type ComputeSliceOptions } from './compute-slices.js';
import type { LayerRange } from './layer-range.js';
import { OneAtATime } from './one-at-a-time.js';
import { ropeFrequencies } from './rope.js';
import { TfjsKvCache } from './tfjs-kv-cache.js';
import { disposeTfjsWeights, type TfjsShardWeights } from './tfjs-weights.js';

/**
 * A contiguous range of a Llama/Qwen2 transformer's layers computed with stock tfjs ops in F32: the second
 * implementation of ForwardShard, beside QuantShard on our kernels, and a plain reference for it. The whole forward
 * pass is `pass` below; read it top to bottom next to llama2.c's run.c. Shapes: n = positions in this pass,
 * H = hidden size, d = head size, T = positions in the cache after this pass, g = query heads per KV head.
 */
export class TfjsShard implements ForwardShard {
  readonly config: ModelConfig;
  readonly range: LayerRange;
  readonly isFirst: boolean;
  readonly isLast: boolean;
  private readonly freqs: Float64Array;
  /** Passes pause between layers (the node's event loop runs meanwhile); they run one at a time. */
  private readonly passes = new OneAtATime();
  private disposed = false;

  constructor(
    private readonly weights: TfjsShardWeights,
    private readonly ropeLayout: RopeLayout,
    private readonly slicing: ComputeSliceOptions = {},
  ) {
    this.config = weights.config;
    this.range = weights.range;
    this.isFirst = weights.range.startLayer === 0;
    this.isLast = weights.range.endLayer === weights.config.numLayers;
    this.freqs = ropeFrequencies(this.config);
  }

  get weightBytes(): number {
    return this.weights.weightBytes;
  }

  createCache(contextLength = this.config.contextLength): TfjsKvCache {
    return new TfjsKvCache(this.weights.layers.length, contextLength);
  }

  async forward(input: ShardInput, cache: ShardKvCache, opts: { allLogits?: boolean } = {}): Promise<ShardOutput> {
    return (await this.forwardBatch([{ input, cache, logits: opts.allLogits ? 'all' : 'last' }]))[0];
  }

  /**
   * Runs the requests one after another: a request's result cannot depend on the others in the batch, so batch
   * invariance holds trivially (each weight is read once per request, not once per batch as on the kernels). Inputs
   * are checked before anything runs; a failure part-way frees every cache of the batch. A pass lets the event loop
   * turn between layers (compute-slices.ts); meanwhile its caches are held and a dispose() waits for it.
   */
  async forwardBatch(items: readonly BatchItem[]): Promise<ShardOutput[]> {
    if (this.disposed) throw new ShardInputError('this shard was freed');
    const checked = items.map((item) => {
      const cache = this.checkInput(item.input, item.cache);
      const n = item.input.kind === 'tokens' ? item.input.tokens.length : item.input.n;
      return { input: item.input, cache, n, logits: item.logits ?? 'last' };
    });
    if (new Set(checked.map((c) => c.cache)).size !== checked.length) throw new ShardInputError('a request appears twice in one batch');
    const releases: (() => void)[] = [];
    try {
      for (const c of checked) releases.push(c.cache.hold());
      return await this.passes.run(async () => {
        if (this.disposed) throw new ShardInputError('this shard was freed');
        const slices = new ComputeSlices(this.slicing);
        const outs: ShardOutput[] = [];
        try {
          for (const { input, cache, n, logits } of checked) {
            checkShardInput(this, input, cache);
            outs.push(await this.pass(input, cache, n, logits, slices));
          }
        } catch (err) {
          // Some layers may already hold this call's positions: half-updated caches must not be used again.
          for (const c of checked) c.cache.clear();
          throw err;
        }
        return outs;
      });
    } finally {
      for (const release of releases) release();
    }
  }

  /** One request's n new positions through every layer of the shard. */
  private async pass(input: ShardInput, cache: TfjsKvCache, n: number, logits: LogitsWanted, slices: ComputeSlices): Promise<ShardOutput> {
    const c = this.config;
    const start = cache.length;
    const x = await this.layers(input, cache, n, start, slices);
    if (this.isLast && logits === 'none') {
      x.dispose();
      cache.length = start + n;
      return { kind: 'logits', logits: new Float32Array(0), rows: 0 };
    }
    const out = !this.isLast
      ? x
      : tf.tidy(() => {
          // Embeddings: every position's hidden state after the final norm, no head.
          if (logits === 'normed') return rmsNorm(x, this.weights.outNorm!, c.rmsNormEps);
          // The head: final norm of the rows that need logits, then the output matrix.
          const rows = logits === 'all' ? x : tf.slice(x, [n - 1, 0], [1, c.hiddenSize]);
          return tf.matMul(rmsNorm(rows, this.weights.outNorm!, c.rmsNormEps), this.weights.head!);
        });
    if (out !== x) x.dispose();
    cache.length = start + n;
    const data = out.dataSync() as Float32Array;
    const rows = out.shape[0];
    out.dispose();
    return this.isLast && logits !== 'normed' ? { kind: 'logits', logits: data, rows } : { kind: 'hidden', hidden: data, n };
  }

  /** The residual stream [n, H] after every layer; appends the positions' keys and values to the cache. */
  private async layers(input: ShardInput, cache: TfjsKvCache, n: number, start: number, slices: ComputeSlices): Promise<tf.Tensor2D> {
    const c = this.config;
    const rope = this.ropeTable(start, n);
    let x = this.embed(input, n); // [n, H], the residual stream
    try {
      for (let l = 0; l < this.weights.layers.length; l++) {
        await slices.checkpoint();
        const w = this.weights.layers[l];
        // Each layer in its own tidy: its intermediates are freed before the next layer runs (tfjs-wasm's heap
        // grows to the most it ever held and never shrinks).
        const next = tf.tidy(() => {
          // Attention block: norm → Q, K, V → RoPE → append K, V to the cache → attend → output projection.
          const h = rmsNorm(x, w.attnNorm, c.rmsNormEps);
          const q = this.rope(linear(h, w.wq, w.bq), c.numHeads, rope);
          const k = this.rope(linear(h, w.wk, w.bk), c.numKvHeads, rope);
          const v = linear(h, w.wv, w.bv);
          const cached = cache.append(l, byHead(k, c.numKvHeads), byHead(v, c.numKvHeads));
          const mid: tf.Tensor2D = tf.add(x, tf.matMul(this.attend(q, cached.keys, cached.values, n, start), w.wo));

          // Feed-forward block: norm → gate and up → SwiGLU → down projection.
          const f = rmsNorm(mid, w.ffnNorm, c.rmsNormEps);
          const gate = tf.matMul(f, w.wgate);
          const up = tf.matMul(f, w.wup);
          return tf.add(mid, tf.matMul(tf.mul(tf.mul(gate, tf.sigmoid(gate)), up), w.wdown)) as tf.Tensor2D;
        });
        x.dispose();
        x = next;
      }
      return x;
    } catch (err) {
      x.dispose();
      throw err;
    } finally {
      rope.cos.dispose();
      rope.sin.dispose();
    }
  }

  /**
   * Causal grouped-query attention of the n new queries [n, heads·d] over the cache ([kvHeads, T, d] keys and
   * values): the g query heads sharing a KV head are multiplied together as g·n rows.
   */
  private attend(q: tf.Tensor2D, keys: tf.Tensor3D, values: tf.Tensor3D, n: number, start: number): tf.Tensor2D {
    const c = this.config;
    const d = c.headDim;
    const g = c.numHeads / c.numKvHeads;
    const T = start + n;
    const grouped = tf.reshape(tf.transpose(tf.reshape(q, [n, c.numKvHeads, g, d]), [1, 2, 0, 3]), [c.numKvHeads, g * n, d]);
    const scores = tf.mul(tf.matMul(grouped, keys, false, true), 1 / Math.sqrt(d)); // [kvHeads, g·n, T]
    // Row (head in group, i) is the query at position start + i: it sees positions up to its own.
    const mask = new Float32Array(g * n * T);
    for (let r = 0; r < g * n; r++) mask.fill(-Infinity, r * T + start + (r % n) + 1, (r + 1) * T);
    const probs = tf.softmax(tf.add(scores, tf.tensor2d(mask, [g * n, T])));
    const out = tf.matMul(probs, values); // [kvHeads, g·n, d]
    return tf.reshape(tf.transpose(tf.reshape(out, [c.numKvHeads, g, n, d]), [2, 0, 1, 3]), [n, c.numHeads * d]);
  }

  /**
   * Rotary position embedding of x [n, heads·d]: each pair (a, b) turns by its angle. The pairs are (2i, 2i+1) in
   * GGUF llama files and (i, i + d/2) in Hugging Face and qwen2 files; both are a reshape that puts a pair's two
   * halves on one axis, so the weights are used as the file has them.
   */
  private rope(x: tf.Tensor2D, heads: number, table: { cos: tf.Tensor4D; sin: tf.Tensor4D }): tf.Tensor2D {
    const n = x.shape[0];
    const half = this.config.headDim / 2;
    const interleaved = this.ropeLayout === 'interleaved';
    const axis = interleaved ? 3 : 2;
    const [a, b] = tf.split(tf.reshape(x, interleaved ? [n, heads, half, 2] : [n, heads, 2, half]), 2, axis);
    const cos = interleaved ? table.cos : tf.reshape(table.cos, [n, 1, 1, half]);
    const sin = interleaved ? table.sin : tf.reshape(table.sin, [n, 1, 1, half]);
    const turned = tf.concat([tf.sub(tf.mul(a, cos), tf.mul(b, sin)), tf.add(tf.mul(a, sin), tf.mul(b, cos))], axis);
    return tf.reshape(turned, [n, heads * 2 * half]);
  }

  /** cos and sin of each position times each rotary frequency [n, 1, d/2, 1], in f64 then rounded (as QuantShard). */
  private ropeTable(start: number, n: number): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
    const half = this.config.headDim / 2;
    const cos = new Float32Array(n * half);
    const sin = new Float32Array(n * half);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < half; j++) {
        const angle = (start + i) * this.freqs[j];
        cos[i * half + j] = Math.cos(angle);
        sin[i * half + j] = Math.sin(angle);
      }
    }
    return { cos: tf.tensor4d(cos, [n, 1, half, 1]), sin: tf.tensor4d(sin, [n, 1, half, 1]) };
  }

  /** The pass's rows as the residual stream: embedding rows, or the hidden states given. */
  private embed(input: ShardInput, n: number): tf.Tensor2D {
    const H = this.config.hiddenSize;
    if (input.kind === 'hidden') return tf.tensor2d(input.hidden, [n, H]);
    const table = this.weights.embedding!;
    const rows = new Float32Array(n * H);
    for (let i = 0; i < n; i++) rows.set(table.subarray(input.tokens[i] * H, (input.tokens[i] + 1) * H), i * H);
    return tf.tensor2d(rows, [n, H]);
  }

  checkInput(input: ShardInput, cache: ShardKvCache): TfjsKvCache {
    if (!(cache instanceof TfjsKvCache)) throw new ShardInputError('this cache was not made by this shard');
    checkShardInput(this, input, cache);
    return cache;
  }

  /** Frees the weights: at once, or when the pass running (or waiting) ends. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.passes.idle) disposeTfjsWeights(this.weights);
    else void this.passes.settled().then(() => disposeTfjsWeights(this.weights));
  }
}

/** x / sqrt(mean(x²) + eps) · weight, row by row. */
function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), 1, true), eps))), weight);
}

/** x · W (+ bias), W stored [in, out]. */
function linear(x: tf.Tensor2D, w: tf.Tensor2D, bias: tf.Tensor1D | null): tf.Tensor2D {
  const y: tf.Tensor2D = tf.matMul(x, w);
  return bias ? tf.add(y, bias) : y;
}

/** [n, heads·d] → [heads, n, d]: the cache's layout. */
function byHead(x: tf.Tensor2D, heads: number): tf.Tensor3D {
  const n = x.shape[0];
  return tf.transpose(tf.reshape(x, [n, heads, x.shape[1] / heads]), [1, 0, 2]);
}
