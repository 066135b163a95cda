import type { KernelArena, KernelRuntime, WeightMatrix } from '@edge-node/kernels';
import type { ModelConfig } from '../model/model-config.js';
import type { RopeLayout } from '../model/model-file.js';
import { checkShardInput, ShardInputError, type BatchItem, type ForwardShard, type LogitsWanted, type ShardKvCache, type ShardInput, type ShardOutput } from './forward-shard.js';
import { ComputeSlices, type ComputeSliceOptions } from './compute-slices.js';
import { checkKvCacheType, KvCache, kvRowBytes, kvTypeCode, type KvCacheType, type LayerKv } from './kv-cache.js';
import type { LayerRange } from './layer-range.js';
import { OneAtATime } from './one-at-a-time.js';
import { ropeFrequencies } from './rope.js';
import type { ShardWeights } from './shard-weights.js';

/** Most rows computed in one pass; a longer prompt is computed in slices of this many (each row's result is the same). */
const MAX_ROWS = 64;
/** Pieces start at a multiple of this many weight rows (the kernels take rows in groups). */
const PRODUCT_PIECE_ALIGN = 16;
/** Activation format of the float weight types: they multiply f32 rows directly. */
const ACT_F32 = 0;

/** Buffers of one pass in one arena (offsets), allocated for the pass and freed after it. */
interface Scratch {
  arena: KernelArena;
  x: number; // residual stream [rows, H]
  h: number; // normalised input of the next product [rows, max(H, F)]
  tmp: number; // a product's output before it is added to x [rows, H]
  qkv: number; // [rows, qDim + 2·kvDim]
  attn: number; // [rows, qDim]
  ffn: number; // gate and up side by side [rows, 2F]
  act: number; // prepared (quantised) activations
  rope: number; // cos/sin per row [rows, headDim]
  scores: number; // attention scores [heads, positions]
  logits: number; // [rows that need logits, vocab], last arena only
  blocks: number[];
}

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
  }

  get weightBytes(): number {
    return this.weights.weightBytes;
  }

  createCache(contextLength = this.config.contextLength): KvCache {
    return new KvCache(
      this.weights.layers.map((l) => l.arena),
      this.config.numKvHeads * this.config.headDim,
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
        await this.pass(parts, rows, slices);
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
   * One pass of `rows` rows (the parts' rows, in order) through every layer of the shard. It may pause at each
   * `await slices.checkpoint()`: between products, its state is in its scratch and the held caches, addressed by
   * offsets (an arena that grows meanwhile keeps them), never by views taken before the pause.
   */
  private async pass(parts: readonly Part[], rows: number, slices: ComputeSlices): Promise<void> {
    const c = this.config;
    const H = c.hiddenSize;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const qkvW = qDim + 2 * kvDim;
    const F = c.intermediateSize;
    const scale = 1 / Math.sqrt(c.headDim);
    // Per row: its request's cache and its position.
    const rowCache: KvCache[] = [];
    const rowPos: number[] = [];
    for (const p of parts) {
      for (let i = 0; i < p.rows; i++) {
        rowCache.push(p.seg.cache);
        rowPos.push(p.seg.start + p.r0 + i);
      }
    }
    const positions = Math.max(...rowPos) + 1;
    // Rows that need logits: every row of an allLogits request, else a request's last position.
    const logitRows: { row: number; dst: Float32Array }[] = [];
    if (this.isLast) {
      let row = 0;
      for (const p of parts) {
        for (let i = 0; i < p.rows; i++, row++) {
          const r = p.r0 + i;
          if (p.seg.logits === 'all') logitRows.push({ row, dst: p.seg.out.subarray(r * c.vocabSize, (r + 1) * c.vocabSize) });
          else if (p.seg.logits === 'last' && r === p.seg.n - 1) logitRows.push({ row, dst: p.seg.out });
        }
      }
    }
    const scratches = new Map<KernelArena, Scratch>();
    const scratchIn = (arena: KernelArena): Scratch => {
      let s = scratches.get(arena);
      if (!s) {
        s = this.allocScratch(arena, rows, positions, Math.max(1, logitRows.length));
        scratches.set(arena, s);
        this.ropeTable(s, rowPos);
      }
      return s;
    };

    try {
      let s = scratchIn(this.weights.layers[0].arena);
      this.embed(parts, s);

      for (let l = 0; l < this.weights.layers.length; l++) {
        await slices.checkpoint();
        const w = this.weights.layers[l];
        s = this.moveTo(s, scratchIn(w.arena), rows * H);
        const k = s.arena.kernels;

        // Attention block: norm → Q, K, V → RoPE → append K, V to each request's cache → attend → output projection.
        k.rms_norm(s.x, w.attnNorm, s.h, rows, H, c.rmsNormEps);
        const hAct = this.prepare(s, w.wq, s.h, rows);
        await this.product(w.wq, hAct, rows, s.qkv, qkvW, slices);
        await this.product(w.wk, this.prepare(s, w.wk, s.h, rows, hAct), rows, s.qkv + qDim * 4, qkvW, slices);
        await this.product(w.wv, this.prepare(s, w.wv, s.h, rows, hAct), rows, s.qkv + (qDim + kvDim) * 4, qkvW, slices);
        if (w.bq) {
          k.add_bias(s.qkv, qkvW, rows, w.bq, qDim);
          k.add_bias(s.qkv + qDim * 4, qkvW, rows, w.bk, kvDim);
          k.add_bias(s.qkv + (qDim + kvDim) * 4, qkvW, rows, w.bv, kvDim);
        }
        await slices.checkpoint();
        k.rope(s.qkv, qkvW, rows, c.numHeads, c.headDim, s.rope, this.ropeMode);
        k.rope(s.qkv + qDim * 4, qkvW, rows, c.numKvHeads, c.headDim, s.rope, this.ropeMode);
        for (let i = 0; i < rows; i++) this.appendKv(s, rowCache[i].layer(l), rowCache[i].type, i, rowPos[i]);
        for (let i = 0; i < rows; i++) {
          await slices.checkpoint();
          // The heads of a row are independent (each its own scores region): threads share them.
          const kv = rowCache[i].layer(l);
          const args = [kvTypeCode(rowCache[i].type), s.qkv + i * qkvW * 4, kv.keys, kv.values, rowPos[i] + 1, c.numHeads, c.numKvHeads, c.headDim, scale, s.attn + i * qDim * 4, s.scores] as const;
          // Short contexts are not worth a dispatch.
          if ((rowPos[i] + 1) * c.numHeads < 2048) k.attention(...args, 0, c.numHeads);
          else this.runtime.parallelFor(s.arena, 'attention', [...args], c.numHeads);
        }
        await this.product(w.wo, this.prepare(s, w.wo, s.attn, rows), rows, s.tmp, H, slices);
        k.add_in_place(s.x, s.tmp, rows * H);
        await slices.checkpoint();

        // Feed-forward block: norm → gate and up → SwiGLU → down projection.
        k.rms_norm(s.x, w.ffnNorm, s.h, rows, H, c.rmsNormEps);
        const fAct = this.prepare(s, w.wgate, s.h, rows);
        await this.product(w.wgate, fAct, rows, s.ffn, 2 * F, slices);
        await this.product(w.wup, this.prepare(s, w.wup, s.h, rows, fAct), rows, s.ffn + F * 4, 2 * F, slices);
        await slices.checkpoint();
        k.swiglu(s.ffn, s.ffn + F * 4, 2 * F, s.h, rows, F);
        await this.product(w.wdown, this.prepare(s, w.wdown, s.h, rows), rows, s.tmp, H, slices);
        k.add_in_place(s.x, s.tmp, rows * H);
      }

      if (!this.isLast) {
        const x = s.arena.f32(s.x, rows * H);
        let row = 0;
        for (const p of parts) {
          p.seg.out.set(x.subarray(row * H, (row + p.rows) * H), p.r0 * H);
          row += p.rows;
        }
        return;
      }
      const normed = parts.some((p) => p.seg.logits === 'normed');
      if (logitRows.length === 0 && !normed) return;
      // The head: final norm of the rows that need logits (gathered), then the output matrix.
      await slices.checkpoint();
      const head = this.weights.head!;
      s = this.moveTo(s, scratchIn(head.arena), rows * H);
      if (normed) {
        // Embeddings: every row of such a request after the final norm (llama.cpp's embedding output), no head.
        s.arena.kernels.rms_norm(s.x, this.weights.outNorm, s.h, rows, H, c.rmsNormEps);
        const h = s.arena.f32(s.h, rows * H);
        let row = 0;
        for (const p of parts) {
          if (p.seg.logits === 'normed') p.seg.out.set(h.subarray(row * H, (row + p.rows) * H), p.r0 * H);
          row += p.rows;
        }
        if (logitRows.length === 0) return;
      }
      const nOut = logitRows.length;
      const x = s.arena.f32(s.x, rows * H);
      const gathered = s.arena.f32(s.tmp, nOut * H);
      logitRows.forEach((r, j) => gathered.set(x.subarray(r.row * H, (r.row + 1) * H), j * H));
      s.arena.kernels.rms_norm(s.tmp, this.weights.outNorm, s.h, nOut, H, c.rmsNormEps);
      await this.product(head, this.prepare(s, head, s.h, nOut), nOut, s.logits, c.vocabSize, slices);
      const logits = s.arena.f32(s.logits, nOut * c.vocabSize);
      logitRows.forEach((r, j) => r.dst.set(logits.subarray(j * c.vocabSize, (j + 1) * c.vocabSize)));
    } finally {
      for (const sc of scratches.values()) for (const b of sc.blocks) sc.arena.release(b);
    }
  }

  /** Writes row i's key and value (columns of qkv) into its request's cache at its position. */
  private appendKv(s: Scratch, kv: LayerKv, type: KvCacheType, i: number, pos: number): void {
    const c = this.config;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const k = s.qkv + (i * (qDim + 2 * kvDim) + qDim) * 4;
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

  /** The residual stream follows the layers into the next arena (a copy of rows·H floats). */
  private moveTo(from: Scratch, to: Scratch, n: number): Scratch {
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
    k.prepare_act(fmt, x, rows, w.cols, ptr);
    return { fmt, x, ptr, rowBytes: k.act_row_bytes(fmt, w.cols) };
  }

  /**
   * out = a · Wᵀ. A large product (a prompt slice through a wide matrix, the head over a big vocabulary) is computed in
   * pieces of W's rows with a checkpoint between them, so that one kernel call never holds the event loop for long
   * on a slow or throttled device. A row's output does not depend on the rows computed with it: the same bits.
   */
  private async product(w: WeightMatrix, a: Prepared, rows: number, out: number, outStride: number, slices: ComputeSlices): Promise<void> {
    // A piece's wall time is what matters: the threads share it.
    const pieces = Math.ceil((rows * w.rows * w.cols) / (slices.pieceMacs * this.runtime.threads));
    if (pieces <= 1) {
      this.runtime.matmul(w, a.ptr, a.rowBytes, rows, out, outStride);
      return;
    }
    const step = Math.max(PRODUCT_PIECE_ALIGN, Math.ceil(w.rows / pieces / PRODUCT_PIECE_ALIGN) * PRODUCT_PIECE_ALIGN);
    for (let r0 = 0; r0 < w.rows; r0 += step) {
      if (r0 > 0) await slices.checkpoint();
      const piece: WeightMatrix = { ...w, rows: Math.min(step, w.rows - r0), ptr: w.ptr + r0 * w.rowBytes };
      this.runtime.matmul(piece, a.ptr, a.rowBytes, rows, out + r0 * 4, outStride);
    }
  }

  /** cos and sin of each row's position times each rotary frequency, in f64 then rounded. */
  private ropeTable(s: Scratch, positions: readonly number[]): void {
    const half = this.config.headDim / 2;
    const t = s.arena.f32(s.rope, positions.length * half * 2);
    positions.forEach((pos, i) => {
      for (let j = 0; j < half; j++) {
        const a = pos * this.freqs[j];
        t[i * 2 * half + j] = Math.cos(a);
        t[i * 2 * half + half + j] = Math.sin(a);
      }
    });
  }

  private allocScratch(arena: KernelArena, rows: number, positions: number, logitRows: number): Scratch {
    const c = this.config;
    const H = c.hiddenSize;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const F = c.intermediateSize;
    const widest = Math.max(H, qDim, F);
    const blocks: number[] = [];
    const f32 = (n: number): number => {
      const p = arena.alloc(n * 4);
      blocks.push(p);
      return p;
    };
    const isHeadArena = this.isLast && this.weights.head?.arena === arena;
    try {
      return {
        arena,
        x: f32(rows * H),
        h: f32(rows * widest),
        tmp: f32(rows * H),
        qkv: f32(rows * (qDim + 2 * kvDim)),
        attn: f32(rows * qDim),
        ffn: f32(rows * 2 * F),
        act: f32(2 * rows * widest + 256),
        rope: f32(rows * c.headDim),
        scores: f32(c.numHeads * positions),
        logits: isHeadArena ? f32(logitRows * c.vocabSize) : 0,
        blocks,
      };
    } catch (err) {
      for (const b of blocks) arena.release(b);
      throw err;
    }
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


/** A request's rows in a batch, with where its results go. */
interface Segment {
  input: ShardInput;
  cache: KvCache;
  /** Cache length before the batch: the position of its first row. */
  start: number;
  n: number;
  logits: LogitsWanted;
  logitRows: number;
  out: Float32Array;
}

/** The rows [r0, r0 + rows) of a segment that one pass computes. */
interface Part {
  seg: Segment;
  r0: number;
  rows: number;
}

interface Prepared {
  fmt: number;
  /** The f32 rows it was made from. */
  x: number;
  ptr: number;
  rowBytes: number;
}
