import { zerosLike, type Vec } from './vec.js';

/** RMSNorm as the engine's kernel: y = x / √(mean(x²) + eps) · w, row by row; r (the inverse RMS) kept per row. */
export function rmsNormForward(x: Vec, rows: number, dim: number, w: Vec, eps: number): { y: Vec; r: Vec } {
  const y = zerosLike(x, rows * dim);
  const r = zerosLike(x, rows);
  for (let i = 0; i < rows; i++) normRow(x, y, r, i, dim, w, eps);
  return { y, r };
}

/**
 * Row i of rmsNormForward (a function of its own, as the backward's: V8 optimises it as a whole, where a hot inner
 * loop compiled alone fell back to the interpreter on leaving it).
 */
function normRow(x: Vec, y: Vec, r: Vec, i: number, dim: number, w: Vec, eps: number): void {
  let ss = 0;
  for (let j = 0; j < dim; j++) ss += x[i * dim + j] * x[i * dim + j];
  r[i] = 1 / Math.sqrt(ss / dim + eps);
  for (let j = 0; j < dim; j++) y[i * dim + j] = x[i * dim + j] * r[i] * w[j];
}

/** dx of rmsNormForward (w is frozen): dx_j = r·w_j·dy_j − x_j · r³/d · Σ_k dy_k·w_k·x_k. */
export function rmsNormBackward(dy: Vec, x: Vec, r: Vec, rows: number, dim: number, w: Vec): Vec {
  const dx = zerosLike(dy, rows * dim);
  for (let i = 0; i < rows; i++) normRowBackward(dy, x, r, dx, i, dim, w);
  return dx;
}

/** Row i of rmsNormBackward. */
function normRowBackward(dy: Vec, x: Vec, r: Vec, dx: Vec, i: number, dim: number, w: Vec): void {
  let dot = 0;
  for (let j = 0; j < dim; j++) dot += dy[i * dim + j] * w[j] * x[i * dim + j];
  const ri = r[i];
  const k = (ri * ri * ri * dot) / dim;
  for (let j = 0; j < dim; j++) dx[i * dim + j] = ri * w[j] * dy[i * dim + j] - x[i * dim + j] * k;
}
