import { expF64 } from '@edge-node/kernels';
import { attentionBackward, attentionForward, type AttentionShape } from './attention-grad.js';
import { swigluForward, type SwigluForward } from './swiglu-grad.js';
import { zerosLike, type Vec } from './vec.js';

/**
 * Matrix products of row-major operands, the training ops' heavy work, and the loops heaviest besides — attention's,
 * and those around training's exponentials (SwiGLU's, the cross-entropy's) — on the kernels for f32 (kernel-gemm.ts),
 * or plain loops (this file) for the float64 reference. Each reduces in one fixed order.
 */
export interface Gemm {
  /** a [m, k] · bᵀ (b [n, k]) → [m, n]. */
  nt(a: Vec, m: number, k: number, b: Vec, n: number): Vec;
  /**
   * acc += scale · (a · bᵀ) for a [m, k] and b [n, k], either given transposed when its flag says so (a as [k, m], b as
   * [k, n]): the bits of nt on the transposed copies, then `acc[i] += scale * product[i]`, without those copies or the
   * product as arrays of their own (the LoRA products' copies were a share of a step and of its garbage collection).
   */
  ntAdd(a: Vec, m: number, k: number, b: Vec, n: number, acc: Vec, scale: number, opts?: NtAddOptions): void;
  /**
   * nt of one a against several b's (b_i [n_i, k]): one product with the b's stacked, so a is placed once (q, k and
   * v's A·x share their input). Each output is summed as nt sums it alone, so the bits are nt's for each b.
   */
  ntShared(a: Vec, m: number, k: number, bs: readonly Vec[], ns: readonly number[]): Vec[];
  /**
   * ntAdd of several a's (a_i [m_i, k], or [k, m_i] with aT) against one b, each into its own acc_i: one product with
   * the a's stacked, b placed (and transposed) once. Each output is summed as ntAdd sums it alone: ntAdd's bits.
   */
  ntAddShared(as: readonly Vec[], ms: readonly number[], k: number, b: Vec, n: number, accs: readonly Vec[], scale: number, opts?: NtAddOptions): void;
  /** A frozen matrix W [rows, cols] kept where this multiplies, with its transpose (for the backward), made once. */
  frozen(w: Vec, rows: number, cols: number): FrozenMatrix;
  /** attention-grad.ts's attentionForward, run where this multiplies (its bits wherever it runs). */
  attentionForward(q: Vec, k: Vec, v: Vec, sh: AttentionShape): { out: Vec; probs: Vec };
  /** attention-grad.ts's attentionBackward, run where this multiplies (its bits wherever it runs). */
  attentionBackward(dOut: Vec, q: Vec, k: Vec, v: Vec, probs: Vec, sh: AttentionShape): { dq: Vec; dk: Vec; dv: Vec };
  /**
   * d[o + j] = e^(d[o + j] − max) for j < n (the kernels' expF64 of the f64 difference, stored in d's precision);
   * returns their sum, of the f64 values in order. The cross-entropy's softmax; its bits wherever it runs.
   */
  expShifted(d: Vec, o: number, n: number, max: number): number;
  /** swiglu-grad.ts's swigluForward, run where this multiplies (its bits wherever it runs). */
  swigluForward(g: Vec, u: Vec): SwigluForward;
}

/** Which operands of ntAdd are given transposed, and whether it sets acc (acc[i] = scale · product[i]) instead of adding. */
export interface NtAddOptions {
  aT?: boolean;
  bT?: boolean;
  set?: boolean;
}

/** A frozen weight matrix W [rows = outputs, cols = inputs], ready for both directions. */
export interface FrozenMatrix {
  readonly rows: number;
  readonly cols: number;
  /** x [n, cols] · Wᵀ → [n, rows]. */
  forward(x: Vec, n: number): Vec;
  /** dy [n, rows] · W → [n, cols]. */
  backward(dy: Vec, n: number): Vec;
  /** W's values (checks; the float64 reference copies them). */
  values(): Vec;
}

/** [rows, cols] → [cols, rows]. */
export function transpose(x: Vec, rows: number, cols: number): Vec {
  const t = zerosLike(x, rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = x[i * cols + j];
  return t;
}

/** Loops in JS, sums carried in f64: the reference, and the product for float64 arrays. */
export const JS_GEMM: Gemm = {
  frozen(w, rows, cols) {
    const t = transpose(w, rows, cols);
    return { rows, cols, forward: (x, n) => JS_GEMM.nt(x, n, cols, w, rows), backward: (dy, n) => JS_GEMM.nt(dy, n, rows, t, cols), values: () => w };
  },
  nt(a, m, k, b, n) {
    const y = zerosLike(a, m * n);
    for (let i = 0; i < m; i++) {
      const ao = i * k;
      for (let o = 0; o < n; o++) {
        const bo = o * k;
        let s = 0;
        for (let c = 0; c < k; c++) s += a[ao + c] * b[bo + c];
        y[i * n + o] = s;
      }
    }
    return y;
  },
  ntAdd(a, m, k, b, n, acc, scale, opts) {
    addScaled(acc, JS_GEMM.nt(opts?.aT ? transpose(a, k, m) : a, m, k, opts?.bT ? transpose(b, k, n) : b, n), scale, opts?.set ?? false);
  },
  attentionForward,
  attentionBackward,
  swigluForward,
  expShifted(d, o, n, max) {
    let sum = 0;
    for (let j = 0; j < n; j++) sum += d[o + j] = expF64(d[o + j] - max);
    return sum;
  },
  ntShared(a, m, k, bs, ns) {
    return bs.map((b, i) => JS_GEMM.nt(a, m, k, b, ns[i]));
  },
  ntAddShared(as, ms, k, b, n, accs, scale, opts) {
    as.forEach((a, i) => JS_GEMM.ntAdd(a, ms[i], k, b, n, accs[i], scale, opts));
  },
};

/** acc[i] += scale · p[i] (or = when `set`): the one way ntAdd adds a product (so every Gemm gives the same bits). */
export function addScaled(acc: Vec, p: ArrayLike<number>, scale: number, set: boolean): void {
  if (set) for (let i = 0; i < acc.length; i++) acc[i] = scale * p[i];
  else for (let i = 0; i < acc.length; i++) acc[i] += scale * p[i];
}
