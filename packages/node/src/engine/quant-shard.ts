import type { KernelArena, KernelRuntime, WeightMatrix } from '@edge-node/kernels';
import type { ModelConfig } from '../model/model-config.js';
import type { RopeLayout } from '../model/model-file.js';
import { ContextLengthError, ShardInputError, type ForwardShard, type ShardKvCache, type ShardInput, type ShardOutput } from './forward-shard.js';
import { KvCache, kvTypeCode, type KvCacheType, type LayerKv } from './kv-cache.js';
import type { LayerRange } from './layer-range.js';
import { ropeFrequencies } from './rope.js';
import type { ShardWeights } from './shard-weights.js';

/** Most rows computed in one pass; a longer prompt is computed in slices of this many (each row's result is the same). */
const MAX_ROWS = 64;
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

  constructor(
    private readonly weights: ShardWeights,
    private readonly runtime: KernelRuntime,
    ropeLayout: RopeLayout,
    private readonly kvType: KvCacheType = 'f16',
  ) {
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

  forward(input: ShardInput, cache: ShardKvCache, opts: { allLogits?: boolean } = {}): ShardOutput {
    if (!(cache instanceof KvCache)) throw new ShardInputError('this cache was not made by this shard');
    const c = this.config;
    const n = input.kind === 'tokens' ? input.tokens.length : input.n;
    const start = cache.length;
    if (n < 1) throw new ShardInputError('a forward pass needs at least one position');
    if (start + n > cache.capacity) throw new ContextLengthError(start + n, cache.capacity);
    this.checkInput(input, n);

    const logitRows = opts.allLogits ? n : 1;
    const out = new Float32Array(this.isLast ? logitRows * c.vocabSize : n * c.hiddenSize);
    try {
      for (let r0 = 0; r0 < n; r0 += MAX_ROWS) {
        const rows = Math.min(MAX_ROWS, n - r0);
        // Logits for every row of the pass, or only for the prompt's last position.
        const logits = !this.isLast ? 'none' : opts.allLogits ? 'all' : r0 + rows === n ? 'last' : 'none';
        const dst = this.isLast ? (opts.allLogits ? out.subarray(r0 * c.vocabSize) : out) : out.subarray(r0 * c.hiddenSize);
        this.pass(input, r0, rows, start + r0, cache, logits, dst);
      }
    } catch (err) {
      // Some layers may already hold this call's positions: a half-updated cache must not be used again.
      cache.clear();
      throw err;
    }
    cache.length = start + n;
    return this.isLast ? { kind: 'logits', logits: out, rows: logitRows } : { kind: 'hidden', hidden: out, n };
  }

  /** Rows [r0, r0 + rows) of the input, at positions pos0 …, through every layer of the shard. */
  private pass(input: ShardInput, r0: number, rows: number, pos0: number, cache: KvCache, logits: 'none' | 'last' | 'all', out: Float32Array): void {
    const c = this.config;
    const H = c.hiddenSize;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const qkvW = qDim + 2 * kvDim;
    const F = c.intermediateSize;
    const scale = 1 / Math.sqrt(c.headDim);
    const scratches = new Map<KernelArena, Scratch>();
    const scratchIn = (arena: KernelArena): Scratch => {
      let s = scratches.get(arena);
      if (!s) {
        s = this.allocScratch(arena, rows, pos0 + rows, logits === 'all' ? rows : 1);
        scratches.set(arena, s);
        this.ropeTable(s, rows, pos0);
      }
      return s;
    };

    try {
      let s = scratchIn(this.weights.layers[0].arena);
      this.embed(input, r0, rows, s);

      for (let l = 0; l < this.weights.layers.length; l++) {
        const w = this.weights.layers[l];
        s = this.moveTo(s, scratchIn(w.arena), rows * H);
        const k = s.arena.kernels;
        const kv = cache.layer(l);

        // Attention block: norm → Q, K, V → RoPE → append K, V to the cache → attend → output projection.
        k.rms_norm(s.x, w.attnNorm, s.h, rows, H, c.rmsNormEps);
        const hAct = this.prepare(s, w.wq, s.h, rows);
        this.product(w.wq, hAct, rows, s.qkv, qkvW);
        this.product(w.wk, this.prepare(s, w.wk, s.h, rows, hAct), rows, s.qkv + qDim * 4, qkvW);
        this.product(w.wv, this.prepare(s, w.wv, s.h, rows, hAct), rows, s.qkv + (qDim + kvDim) * 4, qkvW);
        if (w.bq) {
          k.add_bias(s.qkv, qkvW, rows, w.bq, qDim);
          k.add_bias(s.qkv + qDim * 4, qkvW, rows, w.bk, kvDim);
          k.add_bias(s.qkv + (qDim + kvDim) * 4, qkvW, rows, w.bv, kvDim);
        }
        k.rope(s.qkv, qkvW, rows, c.numHeads, c.headDim, s.rope, this.ropeMode);
        k.rope(s.qkv + qDim * 4, qkvW, rows, c.numKvHeads, c.headDim, s.rope, this.ropeMode);
        this.appendKv(s, kv, rows, pos0);
        const kvCode = kvTypeCode(cache.type);
        for (let i = 0; i < rows; i++) {
          k.attention(kvCode, s.qkv + i * qkvW * 4, kv.keys, kv.values, pos0 + i + 1, c.numHeads, c.numKvHeads, c.headDim, scale, s.attn + i * qDim * 4, s.scores, 0, c.numHeads);
        }
        this.product(w.wo, this.prepare(s, w.wo, s.attn, rows), rows, s.tmp, H);
        k.add_in_place(s.x, s.tmp, rows * H);

        // Feed-forward block: norm → gate and up → SwiGLU → down projection.
        k.rms_norm(s.x, w.ffnNorm, s.h, rows, H, c.rmsNormEps);
        const fAct = this.prepare(s, w.wgate, s.h, rows);
        this.product(w.wgate, fAct, rows, s.ffn, 2 * F);
        this.product(w.wup, this.prepare(s, w.wup, s.h, rows, fAct), rows, s.ffn + F * 4, 2 * F);
        k.swiglu(s.ffn, s.ffn + F * 4, 2 * F, s.h, rows, F);
        this.product(w.wdown, this.prepare(s, w.wdown, s.h, rows), rows, s.tmp, H);
        k.add_in_place(s.x, s.tmp, rows * H);
      }

      if (!this.isLast) {
        out.set(s.arena.f32(s.x, rows * H));
        return;
      }
      if (logits === 'none') return;
      // The head: final norm of the rows that need logits, then the output matrix.
      const head = this.weights.head!;
      s = this.moveTo(s, scratchIn(head.arena), rows * H);
      const first = logits === 'all' ? 0 : rows - 1;
      const nOut = rows - first;
      s.arena.kernels.rms_norm(s.x + first * H * 4, this.weights.outNorm, s.h, nOut, H, c.rmsNormEps);
      this.product(head, this.prepare(s, head, s.h, nOut), nOut, s.logits, c.vocabSize);
      out.set(s.arena.f32(s.logits, nOut * c.vocabSize));
    } finally {
      for (const sc of scratches.values()) for (const b of sc.blocks) sc.arena.release(b);
    }
  }

  /** Writes the rows' keys and values (columns of qkv) into the cache at their positions. */
  private appendKv(s: Scratch, kv: LayerKv, rows: number, pos0: number): void {
    const c = this.config;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const qkvW = qDim + 2 * kvDim;
    const f16 = this.kvType === 'f16';
    const eb = f16 ? 2 : 4;
    for (let i = 0; i < rows; i++) {
      const k = s.qkv + (i * qkvW + qDim) * 4;
      const v = k + kvDim * 4;
      const at = (pos0 + i) * kvDim * eb;
      if (f16) {
        s.arena.kernels.to_f16(k, kv.keys + at, kvDim);
        s.arena.kernels.to_f16(v, kv.values + at, kvDim);
      } else {
        s.arena.bytes(kv.keys + at, kvDim * 4).set(s.arena.bytes(k, kvDim * 4));
        s.arena.bytes(kv.values + at, kvDim * 4).set(s.arena.bytes(v, kvDim * 4));
      }
    }
  }

  /** The input rows as the residual stream x: embedding rows (dequantised from the table) or the hidden states given. */
  private embed(input: ShardInput, r0: number, rows: number, s: Scratch): void {
    const H = this.config.hiddenSize;
    if (input.kind === 'hidden') {
      s.arena.f32(s.x, rows * H).set(input.hidden.subarray(r0 * H, (r0 + rows) * H));
      return;
    }
    const e = this.weights.embedding!;
    for (let i = 0; i < rows; i++) e.arena.kernels.dequant(e.type.id, e.ptr + input.tokens[r0 + i] * e.rowBytes, s.x + i * H * 4, H);
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

  private product(w: WeightMatrix, a: Prepared, rows: number, out: number, outStride: number): void {
    this.runtime.matmul(w, a.ptr, a.rowBytes, rows, out, outStride);
  }

  /** cos and sin of each row's position times each rotary frequency, in f64 then rounded. */
  private ropeTable(s: Scratch, rows: number, pos0: number): void {
    const half = this.config.headDim / 2;
    const t = s.arena.f32(s.rope, rows * half * 2);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < half; j++) {
        const a = (pos0 + i) * this.freqs[j];
        t[i * 2 * half + j] = Math.cos(a);
        t[i * 2 * half + half + j] = Math.sin(a);
      }
    }
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

  private checkInput(input: ShardInput, n: number): void {
    const c = this.config;
    if (input.kind === 'hidden') {
      if (this.isFirst) throw new ShardInputError('the first stage takes token ids, not hidden states');
      if (input.hidden.length !== n * c.hiddenSize) throw new ShardInputError(`hidden states have ${input.hidden.length} values, expected ${n} × ${c.hiddenSize}`);
      return;
    }
    if (!this.isFirst) throw new ShardInputError(`layers [${this.range.startLayer}, ${this.range.endLayer}) take hidden states, not token ids`);
    for (let i = 0; i < n; i++) {
      const id = input.tokens[i];
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new ShardInputError(`token id ${id} is outside the vocabulary (0..${c.vocabSize - 1})`);
    }
  }

  dispose(): void {
    for (const a of this.weights.arenas) void this.runtime.releaseArena(a);
    this.weights.layers = [];
  }
}

interface Prepared {
  fmt: number;
  /** The f32 rows it was made from. */
  x: number;
  ptr: number;
  rowBytes: number;
}
