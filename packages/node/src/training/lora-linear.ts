import { gemmNN, gemmTN, JS_GEMM, type FrozenMatrix, type Gemm } from './gemm.js';
import { linearBackward, linearForward } from './linear-grad.js';
import type { Vec } from './vec.js';

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
  const bax = g.nt(ax, rows, p.rank, p.b, p.outDim);
  for (let i = 0; i < y.length; i++) y[i] += p.scale * bax[i];
  return { y, saved: { x, ax, rows } };
}

/**
 * Gradients of loraForward: returns dx; adds dA and dB into the given accumulators (a batch's sequences sum into the
 * same ones, in order). dB = s·dyᵀ·(Ax), d(Ax) = s·dy·B, dA = d(Ax)ᵀ·x, dx = dy·W + d(Ax)·A.
 */
export function loraBackward(dy: Vec, saved: LoraSaved, w: FrozenMatrix, p: TrainablePair, dA: Vec, dB: Vec, g: Gemm = JS_GEMM): Vec {
  const { x, ax, rows } = saved;
  const { rank, inDim, outDim, scale } = p;
  const gb = gemmTN(g, dy, rows, outDim, ax, rank);
  for (let i = 0; i < gb.length; i++) dB[i] += scale * gb[i];
  const dax = gemmNN(g, dy, rows, outDim, p.b, rank);
  for (let i = 0; i < dax.length; i++) dax[i] *= scale;
  const ga = gemmTN(g, dax, rows, rank, x, inDim);
  for (let i = 0; i < ga.length; i++) dA[i] += ga[i];
  const dx = linearBackward(dy, rows, w);
  const fromA = gemmNN(g, dax, rows, rank, p.a, inDim);
  for (let i = 0; i < dx.length; i++) dx[i] += fromA[i];
  return dx;
}
