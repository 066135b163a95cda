import { zerosLike, type Vec } from './vec.js';

/**
 * A linear map through a frozen matrix W [out, in] (GGUF's layout: one row per output): y = x · Wᵀ for rows of x.
 * W is the f32 copy of a block-quantised matrix, dequantised once per step (frozen-weights.ts), not per token.
 */
export function linearForward(x: Vec, rows: number, w: Vec, out: number, inDim: number): Vec {
  const y = zerosLike(x, rows * out);
  for (let i = 0; i < rows; i++) {
    const xo = i * inDim;
    for (let o = 0; o < out; o++) {
      const wo = o * inDim;
      let s = 0;
      for (let c = 0; c < inDim; c++) s += x[xo + c] * w[wo + c];
      y[i * out + o] = s;
    }
  }
  return y;
}

/** The input gradient of linearForward: dx = dy · W (W is frozen: no gradient of its own). Adds into dx when given. */
export function linearBackward(dy: Vec, rows: number, w: Vec, out: number, inDim: number, dx: Vec = zerosLike(dy, rows * inDim)): Vec {
  const acc = new Float64Array(inDim);
  for (let i = 0; i < rows; i++) {
    acc.fill(0);
    for (let o = 0; o < out; o++) {
      const g = dy[i * out + o];
      if (g === 0) continue;
      const wo = o * inDim;
      for (let c = 0; c < inDim; c++) acc[c] += g * w[wo + c];
    }
    for (let c = 0; c < inDim; c++) dx[i * inDim + c] += acc[c];
  }
  return dx;
}
