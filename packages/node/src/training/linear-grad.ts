import type { FrozenMatrix } from './gemm.js';
import type { Vec } from './vec.js';

/**
 * A linear map through a frozen matrix W [out, in] (GGUF's layout: one row per output): y = x · Wᵀ for rows of x.
 * W is the f32 copy of a block-quantised matrix, dequantised once per job (frozen-model.ts), not per token.
 */
export function linearForward(x: Vec, rows: number, w: FrozenMatrix): Vec {
  return w.forward(x, rows);
}

/** The input gradient of linearForward: dx = dy · W (W is frozen: no gradient of its own); added into dx when given. */
export function linearBackward(dy: Vec, rows: number, w: FrozenMatrix, dx?: Vec): Vec {
  const d = w.backward(dy, rows);
  if (!dx) return d;
  for (let i = 0; i < d.length; i++) dx[i] += d[i];
  return dx;
}
