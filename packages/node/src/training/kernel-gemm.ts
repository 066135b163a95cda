import { ggmlTypeByName, type KernelArena, type KernelRuntime } from '@edge-node/kernels';
import { addScaled, JS_GEMM, transpose, type FrozenMatrix, type Gemm, type NtAddOptions } from './gemm.js';
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
      addScaled(acc, arena.f32(outPtr, m * n), scale, opts?.set ?? false);
    } finally {
      arena.release(outPtr);
      arena.release(aPtr);
      arena.release(bPtr);
    }
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

  private place(values: Float32Array): number {
    const ptr = this.arena.alloc(values.length * 4);
    this.arena.f32(ptr, values.length).set(values);
    return ptr;
  }

  /** x [rows, cols] written into the arena as its transpose [cols, rows]. */
  private placeTransposed(x: Float32Array, rows: number, cols: number): number {
    const ptr = this.arena.alloc(rows * cols * 4);
    const t = this.arena.f32(ptr, rows * cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = x[i * cols + j];
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
