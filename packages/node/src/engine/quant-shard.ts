import type { KernelRuntime, WeightMatrix } from '@edge-node/kernels';
import type { ModelConfig } from '../model/model-config.js';
import type { RopeLayout } from '../model/model-file.js';
import { checkShardInput, ShardInputError, type BatchItem, type ForwardShard, type ShardKvCache, type ShardInput, type ShardOutput } from './forward-shard.js';
import { ComputeSlices, type ComputeSliceOptions } from './compute-slices.js';
import { checkKvCacheType, KvCache, kvRowBytes, kvTypeCode, type KvCacheType, type LayerKv } from './kv-cache.js';
import type { LayerRange } from './layer-range.js';
import { OneAtATime } from './one-at-a-time.js';
import { copyRowsOut, passRows, type Part, type PassRows, type Segment } from './pass-rows.js';
import { PassScratch, shardDims, type ShardDims, type Scratch } from './pass-scratch.js';
import { ropeFrequencies } from './rope.js';
import type { LayerWeights, ShardWeights } from './shard-weights.js';
import { applyLora, type LoraProduct } from './lora-weights.js';

/** Most rows computed in one pass; a longer prompt is computed in slices of this many (each row's result is the same). */
const MAX_ROWS = 64;
/** Pieces start at a multiple of this many weight rows (the kernels take rows in groups). */
const PRODUCT_PIECE_ALIGN = 16;
/**
 * Work (values touched) from which a row-wise step is split over threads: a row's attention by heads (positions ×
 * qDim), a pass's activations and SwiGLU by rows (rows × width). Below it a dispatch costs more than it saves — and
 * on a loaded machine far more (the other thread may wait for a core), so small models never split them.
 */
const SPLIT_WORK = 1 << 15;
/** Activation format of the float weight types: they multiply f32 rows directly. */
const ACT_F32 = 0;

/**
 * A contiguous range of a Llama/Qwen2 transformer's layers on our WebAssembly kernels, weights in their file
 * encoding. The whole forward pass is `pass` below; read it top to bottom next to llama2.c's run.c. Shapes: rows = positions in
 * this pass, H = hidden size, qDim = heads·headDim, kvDim = KV heads·headDim, F = feed-forward size.
 */
export class QuantShard implements ForwardShard {
  readonly config: ModelConfig;
  readonly range: LayerRange;
  readonly isFirst: boolean;
  readonly isLast: boolean;
  private readonly freqs: Float64Array;
  private readonly ropeMode: number;
  private readonly dims: ShardDims;
  private readonly actFormats = new Map<number, number>();
  /** Passes pause at checkpoints (the node's event loop runs meanwhile); they run one at a time. */
  private readonly passes = new OneAtATime();
  private disposed = false;

  constructor(
    private readonly weights: ShardWeights,
    private readonly runtime: KernelRuntime,
    ropeLayout: RopeLayout,
    private readonly kvType: KvCacheType = 'f16',
    /** How long a pass computes between turns of the event loop (tests: a clock, or a turn at every checkpoint). */
    private readonly slicing: ComputeSliceOptions = {},
  ) {
    checkKvCacheType(kvType, weights.config.headDim);
    this.config = weights.config;
    this.range = weights.range;
    this.isFirst = weights.range.startLayer === 0;
    this.isLast = weights.range.endLayer === weights.config.numLayers;
    this.freqs = ropeFrequencies(this.config);
    this.ropeMode = ropeLayout === 'interleaved' ? 0 : 1;
    this.dims = shardDims(this.config);
  }

  get weightBytes(): number {
    return this.weights.weightBytes;
  }

  createCache(contextLength = this.config.contextLength): KvCache {
    return new KvCache(
      this.weights.layers.map((l) => l.arena),
      this.dims.kvDim,
      contextLength,
      this.kvType,
    );
  }

  async forward(input: ShardInput, cache: ShardKvCache, opts: { allLogits?: boolean } = {}): Promise<ShardOutput> {
    return (await this.forwardBatch([{ input, cache, logits: opts.allLogits ? 'all' : 'last' }]))[0];
  }

  /**
   * Runs several requests' new positions together: every weight is read once for all their rows, while each row
   * attends over its own request's cache at its own position. A row's result does not depend on what else is in the
   * batch (every kernel reduces a row the same way whatever the batch), so a request gives the same bits alone or
   * batched. Inputs are checked before anything runs; a failure part-way frees every cache of the batch.
   *
   * The pass pauses at checkpoints for the node's event loop (compute-slices.ts). Meanwhile its caches are held (a
   * clear() frees them only when it ends), a dispose() waits for it, and a second call waits its turn.
   */
  async forwardBatch(items: readonly BatchItem[]): Promise<ShardOutput[]> {
    if (this.disposed) throw new ShardInputError('this shard was freed');
    const caches = items.map((item) => this.checkInput(item.input, item.cache));
    if (new Set(caches).size !== caches.length) throw new ShardInputError('a request appears twice in one batch');
    const releases: (() => void)[] = [];
    try {
      for (const cache of caches) releases.push(cache.hold());
      return await this.passes.run(() => this.computeBatch(items, caches));
    } finally {
      for (const release of releases) release();
    }
  }

  /** forwardBatch once it is this call's turn: the positions continue where each cache is now. */
  private async computeBatch(items: readonly BatchItem[], caches: readonly KvCache[]): Promise<ShardOutput[]> {
    if (this.disposed) throw new ShardInputError('this shard was freed');
    const c = this.config;
    const segments: Segment[] = items.map((item, i) => {
      const cache = caches[i];
      // Checked again at its turn: what it waited behind may have moved the cache on.
      checkShardInput(this, item.input, cache);
      const n = item.input.kind === 'tokens' ? item.input.tokens.length : item.input.n;
      const logits = item.logits ?? 'last';
      const logitRows = logits === 'all' ? n : logits === 'last' ? 1 : 0;
      const out = new Float32Array(this.isLast && logits !== 'normed' ? logitRows * c.vocabSize : n * c.hiddenSize);
      return { input: item.input, cache, start: cache.length, n, logits, logitRows, out };
    });
    const slices = new ComputeSlices(this.slicing);

    try {
      // Passes of at most MAX_ROWS rows, taking each request's rows in order (a long prompt spans several passes).
      const done = segments.map(() => 0);
      for (let g = 0; g < segments.length; ) {
        const parts: Part[] = [];
        let rows = 0;
        while (g < segments.length && rows < MAX_ROWS) {
          const seg = segments[g];
          const take = Math.min(seg.n - done[g], MAX_ROWS - rows);
          parts.push({ seg, r0: done[g], rows: take });
          rows += take;
          done[g] += take;
          if (done[g] === seg.n) g++;
        }
        await this.pass(parts, slices);
      }
    } catch (err) {
      // Some layers may already hold this call's positions: half-updated caches must not be used again.
      for (const seg of segments) seg.cache.clear();
      throw err;
    }
    return segments.map((seg) => {
      seg.cache.length = seg.start + seg.n;
      return this.isLast && seg.logits !== 'normed' ? { kind: 'logits', logits: seg.out, rows: seg.logitRows } : { kind: 'hidden', hidden: seg.out, n: seg.n };
    });
  }

  /**
   * One pass of the parts' rows through every layer of the shard, then the output: hidden states for the next stage,
   * or (last shard) logits and embeddings. It may pause at each `await slices.checkpoint()`: between products, its
   * state is in its scratch and the held caches, addressed by offsets (an arena that grows meanwhile keeps them),
   * never by views taken before the pause.
   */
  private async pass(parts: readonly Part[], slices: ComputeSlices): Promise<void> {
    const rows = passRows(parts, this.isLast, this.config.vocabSize);
    const count = rows.count;
    const scratch = new PassScratch(this.config, this.dims, this.freqs, this.weights.head?.arena ?? null, rows);
    try {
      let s = scratch.in(this.weights.layers[0].arena);
      this.embed(parts, s);
      for (let l = 0; l < this.weights.layers.length; l++) {
        await slices.checkpoint();
        const w = this.weights.layers[l];
        s = this.moveTo(s, scratch.in(w.arena), count);
        await this.attention(w, l, s, rows, slices);
        await this.feedForward(w, s, count, slices);
      }
      if (this.isLast) await this.output(s, scratch, rows, slices);
      else copyRowsOut(parts, s.arena.f32(s.x, count * this.dims.H), this.dims.H);
    } finally {
      scratch.release();
    }
  }

  /** Attention block: norm → Q, K, V → RoPE → append K, V to each request's cache → attend → output projection. */
  private async attention(w: LayerWeights, l: number, s: Scratch, rows: PassRows, slices: ComputeSlices): Promise<void> {
    const c = this.config;
    const { H, qDim, kvDim, qkvW } = this.dims;
    const n = rows.count;
    const k = s.arena.kernels;
    k.rms_norm(s.x, w.attnNorm, s.h, n, H, c.rmsNormEps);
    const hAct = this.prepare(s, w.wq, s.h, n);
    await this.product(w.wq, hAct, n, s.qkv, qkvW, slices, w.lora?.attn_q);
    await this.product(w.wk, this.prepare(s, w.wk, s.h, n, hAct), n, s.qkv + qDim * 4, qkvW, slices, w.lora?.attn_k);
    await this.product(w.wv, this.prepare(s, w.wv, s.h, n, hAct), n, s.qkv + (qDim + kvDim) * 4, qkvW, slices, w.lora?.attn_v);
    if (w.bq) {
      k.add_bias(s.qkv, qkvW, n, w.bq, qDim);
      k.add_bias(s.qkv + qDim * 4, qkvW, n, w.bk, kvDim);
      k.add_bias(s.qkv + (qDim + kvDim) * 4, qkvW, n, w.bv, kvDim);
    }
    await slices.checkpoint();
    k.rope(s.qkv, qkvW, n, c.numHeads, c.headDim, s.rope, this.ropeMode);
    k.rope(s.qkv + qDim * 4, qkvW, n, c.numKvHeads, c.headDim, s.rope, this.ropeMode);
    for (let i = 0; i < n; i++) this.appendKv(s, rows.cache[i].layer(l), rows.cache[i].type, i, rows.pos[i]);
    for (let i = 0; i < n; i++) {
      await slices.checkpoint();
      this.attend(s, rows.cache[i], l, i, rows.pos[i]);
    }
    await this.product(w.wo, this.prepare(s, w.wo, s.attn, n), n, s.tmp, H, slices, w.lora?.attn_output);
    k.add_in_place(s.x, s.tmp, n * H);
    await slices.checkpoint();
  }

  /** Row i's query over its request's cache up to its position, into its row of attn. */
  private attend(s: Scratch, cache: KvCache, l: number, i: number, pos: number): void {
    const c = this.config;
    const { qDim, qkvW, scale } = this.dims;
    // The heads of a row are independent (each its own scores region): threads share them.
    const kv = cache.layer(l);
    const args = [kvTypeCode(cache.type), s.qkv + i * qkvW * 4, kv.keys, kv.values, pos + 1, c.numHeads, c.numKvHeads, c.headDim, scale, s.attn + i * qDim * 4, s.scores] as const;
    // Short contexts are not worth a dispatch (a few µs: a row of 32 positions × 16 heads computes for ~10 µs).
    if ((pos + 1) * qDim < SPLIT_WORK) s.arena.kernels.attention(...args, 0, c.numHeads);
    else this.runtime.parallelFor(s.arena, 'attention', [...args], c.numHeads);
  }

  /** Feed-forward block: norm → gate and up → SwiGLU → down projection. */
  private async feedForward(w: LayerWeights, s: Scratch, n: number, slices: ComputeSlices): Promise<void> {
    const { H, F } = this.dims;
    const k = s.arena.kernels;
    k.rms_norm(s.x, w.ffnNorm, s.h, n, H, this.config.rmsNormEps);
    const fAct = this.prepare(s, w.wgate, s.h, n);
    await this.product(w.wgate, fAct, n, s.ffn, 2 * F, slices, w.lora?.ffn_gate);
    await this.product(w.wup, this.prepare(s, w.wup, s.h, n, fAct), n, s.ffn + F * 4, 2 * F, slices, w.lora?.ffn_up);
    await slices.checkpoint();
    if (n * F < SPLIT_WORK) k.swiglu(s.ffn, s.ffn + F * 4, 2 * F, s.h, n, F);
    else this.runtime.parallelFor(s.arena, 'swiglu_rows', [s.ffn, s.ffn + F * 4, 2 * F, s.h, F], n);
    await this.product(w.wdown, this.prepare(s, w.wdown, s.h, n), n, s.tmp, H, slices, w.lora?.ffn_down);
    k.add_in_place(s.x, s.tmp, n * H);
  }

  /** The last shard's output: embeddings (rows after the final norm) and logits of the rows that need them. */
  private async output(s: Scratch, scratch: PassScratch, rows: PassRows, slices: ComputeSlices): Promise<void> {
    const c = this.config;
    const H = this.dims.H;
    const normed = rows.parts.some((p) => p.seg.logits === 'normed');
    if (rows.logits.length === 0 && !normed) return;
    await slices.checkpoint();
    const head = this.weights.head!;
    s = this.moveTo(s, scratch.in(head.arena), rows.count);
    if (normed) {
      // Embeddings: every row of such a request after the final norm (llama.cpp's embedding output), no head.
      s.arena.kernels.rms_norm(s.x, this.weights.outNorm, s.h, rows.count, H, c.rmsNormEps);
      copyRowsOut(rows.parts, s.arena.f32(s.h, rows.count * H), H, 'normed');
      if (rows.logits.length === 0) return;
    }
    // The head: final norm of the rows that need logits (gathered), then the output matrix.
    const nOut = rows.logits.length;
    const x = s.arena.f32(s.x, rows.count * H);
    const gathered = s.arena.f32(s.tmp, nOut * H);
    rows.logits.forEach((r, j) => gathered.set(x.subarray(r.row * H, (r.row + 1) * H), j * H));
    s.arena.kernels.rms_norm(s.tmp, this.weights.outNorm, s.h, nOut, H, c.rmsNormEps);
    await this.product(head, this.prepare(s, head, s.h, nOut), nOut, s.logits, c.vocabSize, slices);
    const logits = s.arena.f32(s.logits, nOut * c.vocabSize);
    rows.logits.forEach((r, j) => r.dst.set(logits.subarray(j * c.vocabSize, (j + 1) * c.vocabSize)));
  }

  /** Writes row i's key and value (columns of qkv) into its request's cache at its position. */
  private appendKv(s: Scratch, kv: LayerKv, type: KvCacheType, i: number, pos: number): void {
    const { qDim, kvDim, qkvW } = this.dims;
    const k = s.qkv + (i * qkvW + qDim) * 4;
    const v = k + kvDim * 4;
    const at = pos * kvRowBytes(type, kvDim);
    const kern = s.arena.kernels;
    if (type === 'q8_0') {
      kern.quantize_q8_0(k, kv.keys + at, kvDim);
      kern.quantize_q8_0(v, kv.values + at, kvDim);
    } else if (type === 'f16') {
      kern.to_f16(k, kv.keys + at, kvDim);
      kern.to_f16(v, kv.values + at, kvDim);
    } else {
      s.arena.bytes(kv.keys + at, kvDim * 4).set(s.arena.bytes(k, kvDim * 4));
      s.arena.bytes(kv.values + at, kvDim * 4).set(s.arena.bytes(v, kvDim * 4));
    }
  }

  /** The pass's rows as the residual stream x: embedding rows (dequantised from the table) or the hidden states given. */
  private embed(parts: readonly Part[], s: Scratch): void {
    const H = this.config.hiddenSize;
    let row = 0;
    for (const { seg, r0, rows } of parts) {
      const input = seg.input;
      if (input.kind === 'hidden') {
        s.arena.f32(s.x + row * H * 4, rows * H).set(input.hidden.subarray(r0 * H, (r0 + rows) * H));
      } else {
        const e = this.weights.embedding!;
        for (let i = 0; i < rows; i++) e.arena.kernels.dequant(e.type.id, e.ptr + input.tokens[r0 + i] * e.rowBytes, s.x + (row + i) * H * 4, H);
      }
      row += rows;
    }
  }

  /** The residual stream of `rows` rows follows the layers into the next arena (a copy of rows·H floats). */
  private moveTo(from: Scratch, to: Scratch, rows: number): Scratch {
    const n = rows * this.dims.H;
    if (from !== to) to.arena.f32(to.x, n).set(from.arena.f32(from.x, n));
    return to;
  }

  /**
   * Prepares f32 rows at x for a product with W: quantised per block in W's activation format, or used as they are for
   * float weights. `reuse` is the result of preparing the same rows for a matrix of the same format, if any.
   */
  private prepare(s: Scratch, w: WeightMatrix, x: number, rows: number, reuse?: Prepared): Prepared {
    let fmt = this.actFormats.get(w.type.id);
    if (fmt === undefined) {
      fmt = this.runtime.actFormat(w.type);
      this.actFormats.set(w.type.id, fmt);
    }
    if (reuse && reuse.fmt === fmt && reuse.x === x) return reuse;
    if (fmt === ACT_F32) return { fmt, x, ptr: x, rowBytes: w.cols * 4 };
    const k = s.arena.kernels;
    // A second format in the same step (say Q6_K beside Q4_K) must not overwrite the first's buffer in use.
    const ptr = reuse && reuse.ptr === s.act ? s.act + Math.ceil((reuse.rowBytes * rows) / 64) * 64 : s.act;
    if (rows * w.cols < SPLIT_WORK) k.prepare_act(fmt, x, rows, w.cols, ptr);
    else this.runtime.parallelFor(s.arena, 'prepare_act_rows', [fmt, x, w.cols, ptr], rows);
    return { fmt, x, ptr, rowBytes: k.act_row_bytes(fmt, w.cols) };
  }

  /**
   * out = a · Wᵀ. A large product (a prompt slice through a wide matrix, the head over a big vocabulary) is computed in
   * pieces of W's rows with a checkpoint between them, so that one kernel call never holds the event loop for long
   * on a slow or throttled device. A row's output does not depend on the rows computed with it: the same bits.
   * With a LoRA pair, scale·B·(A·x) is added to the whole result, from the f32 rows the activations were made from.
   */
  private async product(w: WeightMatrix, a: Prepared, rows: number, out: number, outStride: number, slices: ComputeSlices, lora?: LoraProduct): Promise<void> {
    // A piece's wall time is what matters: the threads share it.
    const pieces = Math.ceil((rows * w.rows * w.cols) / (slices.pieceMacs * this.runtime.threads));
    if (pieces <= 1) {
      this.runtime.matmul(w, a.ptr, a.rowBytes, rows, out, outStride);
      if (lora) applyLora(this.runtime, lora, a.x, rows, out, outStride);
      return;
    }
    const step = Math.max(PRODUCT_PIECE_ALIGN, Math.ceil(w.rows / pieces / PRODUCT_PIECE_ALIGN) * PRODUCT_PIECE_ALIGN);
    for (let r0 = 0; r0 < w.rows; r0 += step) {
      if (r0 > 0) await slices.checkpoint();
      const piece: WeightMatrix = { ...w, rows: Math.min(step, w.rows - r0), ptr: w.ptr + r0 * w.rowBytes };
      this.runtime.matmul(piece, a.ptr, a.rowBytes, rows, out + r0 * 4, outStride);
    }
    if (lora) applyLora(this.runtime, lora, a.x, rows, out, outStride);
  }

  checkInput(input: ShardInput, cache: ShardKvCache): KvCache {
    if (!(cache instanceof KvCache)) throw new ShardInputError('this cache was not made by this shard');
    checkShardInput(this, input, cache);
    return cache;
  }

  /** Frees the weights: at once, or when the pass running (or waiting) ends — it may be paused at a checkpoint. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const free = () => {
      for (const a of this.weights.arenas) void this.runtime.releaseArena(a);
      this.weights.layers = [];
    };
    if (this.passes.idle) free();
    else void this.passes.settled().then(free);
  }
}

interface Prepared {
  fmt: number;
  /** The f32 rows it was made from. */
  x: number;
  ptr: number;
  rowBytes: number;
}

