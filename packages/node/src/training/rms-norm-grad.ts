import { zerosLike, type Vec } from './vec.js';

/** RMSNorm as the engine's kernel: y = x / √(mean(x²) + eps) · w, row by row; r (the inverse RMS) kept per row. */
export function rmsNormForward(x: Vec, rows: number, dim: number, w: Vec, eps: number): { y: Vec; r: Vec } {
  const y = zerosLike(x, rows * dim);
  const r = zerosLike(x, rows);
  for (let i = 0; i < rows; i++) {
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[i * dim + j] * x[i * dim + j];
    r[i] = 1 / Math.sqrt(ss / dim + eps);
    for (let j = 0; j < dim; j++) y[i * dim + j] = x[i * dim + j] * r[i] * w[j];
  }
  return { y, r };
}

/** dx of rmsNormForward (w is frozen): dx_j = r·w_j·dy_j − x_j · r³/d · Σ_k dy_k·w_k·x_k. */
export function rmsNormBackward(dy: Vec, x: Vec, r: Vec, rows: number, dim: number, w: Vec): Vec {
  const dx = zerosLike(dy, rows * dim);
  for (let i = 0; i < rows; i++) {
    let dot = 0;
    for (let j = 0; j < dim; j++) dot += dy[i * dim + j] * w[j] * x[i * dim + j];
    const ri = r[i];
    const k = (ri * ri * ri * dot) / dim;
    for (let j = 0; j < dim; j++) dx[i * dim + j] = ri * w[j] * dy[i * dim + j] - x[i * dim + j] * k;
  }
  return dx;
}
