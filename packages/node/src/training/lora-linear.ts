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
export function loraForward(x: Vec, rows: number, w: Vec, p: TrainablePair): { y: Vec; saved: LoraSaved } {
  const y = linearForward(x, rows, w, p.outDim, p.inDim);
  const ax = linearForward(x, rows, p.a, p.rank, p.inDim);
  const bax = linearForward(ax, rows, p.b, p.outDim, p.rank);
  for (let i = 0; i < y.length; i++) y[i] += p.scale * bax[i];
  return { y, saved: { x, ax, rows } };
}

/**
 * Gradients of loraForward: returns dx; adds dA and dB into the given accumulators (a micro-batch's rows and the
 * batch's sequences sum into the same ones, in order).
 */
export function loraBackward(dy: Vec, saved: LoraSaved, w: Vec, p: TrainablePair, dA: Vec, dB: Vec): Vec {
  const { x, ax, rows } = saved;
  const { rank, inDim, outDim, scale } = p;
  // dB[o, j] += s · Σ_i dy[i, o] · ax[i, j]
  for (let o = 0; o < outDim; o++) {
    for (let j = 0; j < rank; j++) {
      let s = 0;
      for (let i = 0; i < rows; i++) s += dy[i * outDim + o] * ax[i * rank + j];
      dB[o * rank + j] += scale * s;
    }
  }
  // d(ax) = s · dy · B
  const dax = linearBackward(dy, rows, p.b, outDim, rank);
  for (let i = 0; i < dax.length; i++) dax[i] *= scale;
  // dA[j, c] += Σ_i dax[i, j] · x[i, c]
  for (let j = 0; j < rank; j++) {
    for (let c = 0; c < inDim; c++) {
      let s = 0;
      for (let i = 0; i < rows; i++) s += dax[i * rank + j] * x[i * inDim + c];
      dA[j * inDim + c] += s;
    }
  }
  const dx = linearBackward(dy, rows, w, outDim, inDim, zerosLike(dy, rows * inDim));
  return linearBackward(dax, rows, p.a, rank, inDim, dx);
}
