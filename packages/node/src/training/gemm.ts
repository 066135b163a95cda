import { zerosLike, type Vec } from './vec.js';

/**
 * Matrix products of row-major operands, the training ops' only heavy work: the kernels' SIMD product for f32
 * (kernel-gemm.ts), or plain loops (this file) for the float64 reference. Each reduces in one fixed order.
 */
export interface Gemm {
  /** a [m, k] · bᵀ (b [n, k]) → [m, n]. */
  nt(a: Vec, m: number, k: number, b: Vec, n: number): Vec;
  /** A frozen matrix W [rows, cols] kept where this multiplies, with its transpose (for the backward), made once. */
  frozen(w: Vec, rows: number, cols: number): FrozenMatrix;
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

/** a [m, k] · b (b [k, n]) → [m, n]: bᵀ then nt. */
export function gemmNN(g: Gemm, a: Vec, m: number, k: number, b: Vec, n: number): Vec {
  return g.nt(a, m, k, transpose(b, k, n), n);
}

/** aᵀ (a [r, m]) · b (b [r, n]) → [m, n]: a sum over the rows of both, as nt of their transposes. */
export function gemmTN(g: Gemm, a: Vec, r: number, m: number, b: Vec, n: number): Vec {
  return g.nt(transpose(a, r, m), m, r, transpose(b, r, n), n);
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
};
