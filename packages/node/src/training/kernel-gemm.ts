import { ggmlTypeByName, type KernelArena, type KernelRuntime } from '@edge-node/kernels';
import type { AttentionShape } from './attention-grad.js';
import { attentionBackwardOnKernels, attentionForwardOnKernels } from './kernel-attention-grad.js';
import { addScaled, JS_GEMM, transpose, type FrozenMatrix, type Gemm, type NtAddOptions } from './gemm.js';
import type { SwigluForward } from './swiglu-grad.js';
import type { Vec } from './vec.js';

const F32 = ggmlTypeByName('F32')!;
/**
 * f32 products on the engine's kernels: both operands copied into a scratch block of an arena, b as an F32 weight
 * matrix, a as f32 activation rows, the runtime's product (SIMD, a row reduced the same way whatever the batch).
 * Copies are O(m·k + n·k) against the product's O(m·n·k). Float64 arrays take the JS loops (the reference).
 */
export class KernelGemm implements Gemm {
  private constructor(
    private readonly runtime: KernelRuntime,
    private readonly arena: KernelArena,
  ) {}

  static async create(runtime: KernelRuntime): Promise<KernelGemm> {
    return new KernelGemm(runtime, await runtime.createArena(1 << 20));
  }

  nt(a: Vec, m: number, k: number, b: Vec, n: number): Vec {
    if (!(a instanceof Float32Array) || !(b instanceof Float32Array)) return JS_GEMM.nt(a, m, k, b, n);
    const bPtr = this.place(b.subarray(0, n * k));
    try {
      return this.times(bPtr, n, k, a, m);
    } finally {
      this.arena.release(bPtr);
    }
  }

  /**
   * A transposed operand is written into the arena transposed (one pass, no array of its own), and the product added
   * from the arena: the bits of nt on transposed copies.
   */
  ntAdd(a: Vec, m: number, k: number, b: Vec, n: number, acc: Vec, scale: number, opts?: NtAddOptions): void {
    if (!(a instanceof Float32Array) || !(b instanceof Float32Array)) return JS_GEMM.ntAdd(a, m, k, b, n, acc, scale, opts);
    const arena = this.arena;
    const bPtr = opts?.bT ? this.placeTransposed(b, k, n) : this.place(b.subarray(0, n * k));
    const aPtr = opts?.aT ? this.placeTransposed(a, k, m) : this.place(a.subarray(0, m * k));
    const outPtr = arena.alloc(m * n * 4);
    try {
      this.runtime.matmul({ arena, type: F32, rows: n, cols: k, ptr: bPtr, rowBytes: k * 4 }, aPtr, k * 4, m, outPtr, n);
      this.addProduct(acc, outPtr, scale, opts?.set ?? false);
    } finally {
      arena.release(outPtr);
      arena.release(aPtr);
      arena.release(bPtr);
    }
  }

  ntShared(a: Vec, m: number, k: number, bs: readonly Vec[], ns: readonly number[]): Vec[] {
    if (!(a instanceof Float32Array) || !bs.every((b) => b instanceof Float32Array)) return JS_GEMM.ntShared(a, m, k, bs, ns);
    const arena = this.arena;
    const n = ns.reduce((s, x) => s + x, 0);
    const bPtr = arena.alloc(n * k * 4);
    const aPtr = this.place(a.subarray(0, m * k));
    const outPtr = arena.alloc(m * n * 4);
    try {
      let row = 0;
      bs.forEach((b, i) => {
        arena.f32(bPtr + row * k * 4, ns[i] * k).set((b as Float32Array).subarray(0, ns[i] * k));
        row += ns[i];
      });
      this.runtime.matmul({ arena, type: F32, rows: n, cols: k, ptr: bPtr, rowBytes: k * 4 }, aPtr, k * 4, m, outPtr, n);
      // Each b's columns of the stacked product's rows, as its own [m, n_i].
      const out = arena.f32(outPtr, m * n);
      let col = 0;
      return ns.map((ni) => {
        const y = new Float32Array(m * ni);
        for (let i = 0; i < m; i++) y.set(out.subarray(i * n + col, i * n + col + ni), i * ni);
        col += ni;
        return y;
      });
    } finally {
      arena.release(outPtr);
      arena.release(aPtr);
      arena.release(bPtr);
    }
  }

  ntAddShared(as: readonly Vec[], ms: readonly number[], k: number, b: Vec, n: number, accs: readonly Vec[], scale: number, opts?: NtAddOptions): void {
    if (!as.every((a) => a instanceof Float32Array) || !(b instanceof Float32Array)) return JS_GEMM.ntAddShared(as, ms, k, b, n, accs, scale, opts);
    const arena = this.arena;
    const m = ms.reduce((s, x) => s + x, 0);
    const bPtr = opts?.bT ? this.placeTransposed(b, k, n) : this.place(b.subarray(0, n * k));
    const aPtr = arena.alloc(m * k * 4);
    const outPtr = arena.alloc(m * n * 4);
    try {
      let row = 0;
      as.forEach((a, i) => {
        const at = aPtr + row * k * 4;
        if (opts?.aT) this.placeTransposed(a as Float32Array, k, ms[i], at);
        else arena.f32(at, ms[i] * k).set((a as Float32Array).subarray(0, ms[i] * k));
        row += ms[i];
      });
      this.runtime.matmul({ arena, type: F32, rows: n, cols: k, ptr: bPtr, rowBytes: k * 4 }, aPtr, k * 4, m, outPtr, n);
      row = 0;
      accs.forEach((acc, i) => {
        this.addProduct(acc, outPtr + row * n * 4, scale, opts?.set ?? false);
        row += ms[i];
      });
    } finally {
      arena.release(outPtr);
      arena.release(aPtr);
      arena.release(bPtr);
    }
  }

  attentionForward(q: Vec, k: Vec, v: Vec, sh: AttentionShape): { out: Vec; probs: Vec } {
    const f32 = [q, k, v].every((x) => x instanceof Float32Array);
    if (!f32 || sh.heads % sh.kvHeads !== 0) return JS_GEMM.attentionForward(q, k, v, sh);
    return attentionForwardOnKernels(this.arena, q as Float32Array, k as Float32Array, v as Float32Array, sh);
  }

  /** On `exp_shifted` for f32 arrays: the n values copied in and their exponentials out. */
  expShifted(d: Vec, o: number, n: number, max: number): number {
    if (!(d instanceof Float32Array)) return JS_GEMM.expShifted(d, o, n, max);
    const ptr = this.place(d.subarray(o, o + n));
    try {
      const sum = this.arena.kernels.exp_shifted(ptr, n, max);
      d.set(this.arena.f32(ptr, n), o);
      return sum;
    } finally {
      this.arena.release(ptr);
    }
  }

  /** On `swiglu_train` for f32 arrays: g and u copied in, the output and 1 + e^−g out. */
  swigluForward(g: Vec, u: Vec): SwigluForward {
    if (!(g instanceof Float32Array) || !(u instanceof Float32Array)) return JS_GEMM.swigluForward(g, u);
    const n = g.length;
    const arena = this.arena;
    const [gPtr, uPtr, outPtr, denPtr] = [this.place(g), this.place(u.subarray(0, n)), arena.alloc(n * 4), arena.alloc(n * 8)];
    try {
      arena.kernels.swiglu_train(gPtr, uPtr, outPtr, denPtr, n);
      return { out: arena.f32(outPtr, n).slice(), den: new Float64Array(arena.bytes(denPtr, n * 8).buffer, denPtr, n).slice() };
    } finally {
      for (const p of [denPtr, outPtr, uPtr, gPtr]) arena.release(p);
    }
  }

  attentionBackward(dOut: Vec, q: Vec, k: Vec, v: Vec, probs: Vec, sh: AttentionShape): { dq: Vec; dk: Vec; dv: Vec } {
    const f32 = [dOut, q, k, v, probs].every((x) => x instanceof Float32Array);
    if (!f32 || sh.heads % sh.kvHeads !== 0) return JS_GEMM.attentionBackward(dOut, q, k, v, probs, sh);
    return attentionBackwardOnKernels(this.arena, dOut as Float32Array, q as Float32Array, k as Float32Array, v as Float32Array, probs as Float32Array, sh);
  }

  /**
   * W and Wᵀ copied into the arena once (8 bytes per weight; the file's blocks stay where the engine has them), so a
   * product copies only its activations. Float64 matrices stay on the loops.
   */
  frozen(w: Vec, rows: number, cols: number): FrozenMatrix {
    if (!(w instanceof Float32Array)) return JS_GEMM.frozen(w, rows, cols);
    const wPtr = this.place(w);
    const tPtr = this.place(transpose(w, rows, cols) as Float32Array);
    return {
      rows,
      cols,
      forward: (x, n) => (x instanceof Float32Array ? this.times(wPtr, rows, cols, x, n) : JS_GEMM.nt(x, n, cols, this.arena.f32(wPtr, rows * cols).slice(), rows)),
      backward: (dy, n) => (dy instanceof Float32Array ? this.times(tPtr, cols, rows, dy, n) : JS_GEMM.nt(dy, n, rows, this.arena.f32(tPtr, rows * cols).slice(), cols)),
      values: () => this.arena.f32(wPtr, rows * cols).slice(),
    };
  }

  /**
   * acc += scale · the product at outPtr (or = with `set`), as addScaled adds it (the same bits), on the kernels: acc
   * copied in and out beats a loop over the arena's view here (the forward's B product and dx's A product add a
   * [rows, out] block each).
   */
  private addProduct(acc: Vec, outPtr: number, scale: number, set: boolean): void {
    const arena = this.arena;
    if (!(acc instanceof Float32Array)) return addScaled(acc, arena.f32(outPtr, acc.length), scale, set);
    const n = acc.length;
    const accPtr = set ? outPtr : this.place(acc);
    try {
      arena.kernels.scaled_add(accPtr, outPtr, n, scale, set ? 1 : 0);
      acc.set(arena.f32(accPtr, n));
    } finally {
      if (accPtr !== outPtr) arena.release(accPtr);
    }
  }

  private place(values: Float32Array): number {
    const ptr = this.arena.alloc(values.length * 4);
    this.arena.f32(ptr, values.length).set(values);
    return ptr;
  }

  /**
   * x [rows, cols] written into the arena as its transpose [cols, rows] (at `at`, or a new block): copied in as it is,
   * then transposed by the kernels (a strided loop through typed-array views here was a few per cent of a step).
   */
  private placeTransposed(x: Float32Array, rows: number, cols: number, at?: number): number {
    const ptr = at ?? this.arena.alloc(rows * cols * 4);
    const src = this.place(x.subarray(0, rows * cols));
    try {
      this.arena.kernels.transpose_f32(src, rows, cols, ptr);
    } finally {
      this.arena.release(src);
    }
    return ptr;
  }

  /** a [m, k] · Bᵀ for B [n, k] already in the arena at bPtr. */
  private times(bPtr: number, n: number, k: number, a: Float32Array, m: number): Float32Array {
    const arena = this.arena;
    const aPtr = this.place(a.subarray(0, m * k));
    const outPtr = arena.alloc(m * n * 4);
    try {
      this.runtime.matmul({ arena, type: F32, rows: n, cols: k, ptr: bPtr, rowBytes: k * 4 }, aPtr, k * 4, m, outPtr, n);
      return arena.f32(outPtr, m * n).slice();
    } finally {
      arena.release(outPtr);
      arena.release(aPtr);
    }
  }

  /** Frees its arena. */
  async close(): Promise<void> {
    await this.runtime.releaseArena(this.arena);
  }
}
