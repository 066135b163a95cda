import { JS_GEMM, type FrozenMatrix, type Gemm } from './gemm.js';
import { linearBackward, linearForward } from './linear-grad.js';
import { zerosLike, type Vec } from './vec.js';

/** One adapted projection's trainable pair: A [rank, in], B [out, rank], and the scale s = alpha / rank. */
export interface TrainablePair {
  a: Vec;
  b: Vec;
  rank: number;
  inDim: number;
  outDim: number;
  scale: number;
}

/** What loraForward keeps for its backward: the input rows and A·x. */
export interface LoraSaved {
  x: Vec;
  ax: Vec;
  rows: number;
}

/** y = W x + s·B(A x) for each row of x; W frozen [out, in]. */
export function loraForward(x: Vec, rows: number, w: FrozenMatrix, p: TrainablePair, g: Gemm = JS_GEMM): { y: Vec; saved: LoraSaved } {
  const y = linearForward(x, rows, w);
  const ax = g.nt(x, rows, p.inDim, p.a, p.rank);
  g.ntAdd(ax, rows, p.rank, p.b, p.outDim, y, p.scale);
  return { y, saved: { x, ax, rows } };
}

/**
 * Gradients of loraForward: returns dx; adds dA and dB into the given accumulators (a batch's sequences sum into the
 * same ones, in order). dB = s·dyᵀ·(Ax), d(Ax) = s·dy·B, dA = d(Ax)ᵀ·x, dx = dy·W + d(Ax)·A. The transposed operands
 * are given as they are (ntAdd's layout), not copied.
 */
export function loraBackward(dy: Vec, saved: LoraSaved, w: FrozenMatrix, p: TrainablePair, dA: Vec, dB: Vec, g: Gemm = JS_GEMM): Vec {
  const { x, ax, rows } = saved;
  const { rank, inDim, outDim, scale } = p;
  // dyᵀ [outDim, rows] · ((Ax)ᵀ [rank, rows])ᵀ, both given as rows × columns.
  g.ntAdd(dy, outDim, rows, ax, rank, dB, scale, { aT: true, bT: true });
  // dy [rows, outDim] · (Bᵀ [rank, outDim])ᵀ: B [outDim, rank] given as it is; set to s · (dy·B).
  const dax = zerosLike(dy, rows * rank);
  g.ntAdd(dy, rows, outDim, p.b, rank, dax, scale, { bT: true, set: true });
  g.ntAdd(dax, rank, rows, x, inDim, dA, 1, { aT: true, bT: true });
  const dx = linearBackward(dy, rows, w);
  g.ntAdd(dax, rows, rank, p.a, inDim, dx, 1, { bT: true });
  return dx;
}
