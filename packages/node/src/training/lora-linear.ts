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
  return loraForwardShared(x, rows, [w], [p], g)[0];
}

/**
 * loraForward of projections with the same input (q, k, v; gate, up): their A·x in one product (x placed once, one
 * call: the rank-8 products' fixed costs were most of their time), each output summed as alone, so the same bits.
 */
export function loraForwardShared(x: Vec, rows: number, ws: readonly FrozenMatrix[], ps: readonly TrainablePair[], g: Gemm = JS_GEMM): { y: Vec; saved: LoraSaved }[] {
  const axs = ps.length === 1 ? [g.nt(x, rows, ps[0].inDim, ps[0].a, ps[0].rank)] : g.ntShared(x, rows, ps[0].inDim, ps.map((p) => p.a), ps.map((p) => p.rank));
  return ps.map((p, i) => {
    const y = linearForward(x, rows, ws[i]);
    g.ntAdd(axs[i], rows, p.rank, p.b, p.outDim, y, p.scale);
    return { y, saved: { x, ax: axs[i], rows } };
  });
}

/**
 * Gradients of loraForward: returns dx; adds dA and dB into the given accumulators (a batch's sequences sum into the
 * same ones, in order). dB = s·dyᵀ·(Ax), d(Ax) = s·dy·B, dA = d(Ax)ᵀ·x, dx = dy·W + d(Ax)·A. The transposed operands
 * are given as they are (ntAdd's layout), not copied.
 */
export function loraBackward(dy: Vec, saved: LoraSaved, w: FrozenMatrix, p: TrainablePair, dA: Vec, dB: Vec, g: Gemm = JS_GEMM): Vec {
  return loraBackwardShared([dy], [saved], [w], [p], [dA], [dB], g)[0];
}

/**
 * loraBackward of projections that had the same input (saved by one loraForwardShared): their dA = d(Ax)ᵀ·x in one
 * product (xᵀ placed once), each summed as alone: the same bits. Returns each projection's dx.
 */
export function loraBackwardShared(
  dys: readonly Vec[],
  saved: readonly LoraSaved[],
  ws: readonly FrozenMatrix[],
  ps: readonly TrainablePair[],
  dAs: readonly Vec[],
  dBs: readonly Vec[],
  g: Gemm = JS_GEMM,
): Vec[] {
  const { x, rows } = saved[0];
  const inDim = ps[0].inDim;
  const daxs = ps.map((p, i) => {
    const { rank, outDim, scale } = p;
    // dyᵀ [outDim, rows] · ((Ax)ᵀ [rank, rows])ᵀ, both given as rows × columns.
    g.ntAdd(dys[i], outDim, rows, saved[i].ax, rank, dBs[i], scale, { aT: true, bT: true });
    // dy [rows, outDim] · (Bᵀ [rank, outDim])ᵀ: B [outDim, rank] given as it is; set to s · (dy·B).
    const dax = zerosLike(dys[i], rows * rank);
    g.ntAdd(dys[i], rows, outDim, p.b, rank, dax, scale, { bT: true, set: true });
    return dax;
  });
  if (ps.length === 1) g.ntAdd(daxs[0], ps[0].rank, rows, x, inDim, dAs[0], 1, { aT: true, bT: true });
  else g.ntAddShared(daxs, ps.map((p) => p.rank), rows, x, inDim, dAs, 1, { aT: true, bT: true });
  return ps.map((p, i) => {
    const dx = linearBackward(dys[i], rows, ws[i]);
    g.ntAdd(daxs[i], rows, p.rank, p.a, inDim, dx, 1, { bT: true });
    return dx;
  });
}
