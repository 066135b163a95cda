import { linearBackward, linearForward } from './linear-grad.js';
import { JS_GEMM, type FrozenMatrix, type Gemm } from './gemm.js';
import { zerosLike, type Vec } from './vec.js';

/** Rows of logits computed at once: a [chunk, vocab] block at a time, never the whole [T, vocab]. */
const DEFAULT_CHUNK_ROWS = 32;

export interface CrossEntropyResult {
  /** Sum over the counted rows of −log softmax(logits)[target]. */
  lossSum: number;
  /** Gradient of lossSum · gradScale with respect to the normed hidden rows [rows, H]. */
  dh: Vec;
}

/**
 * The head and the loss in chunks of the counted rows (mask true; prompt positions are false and never reach the
 * head): logits = h · headᵀ for `chunkRows` of them at a time, −log p(target) summed, and dh = (softmax − onehot) ·
 * head · gradScale for them (zero for the others). The caller's gradScale is 1 / (counted tokens of the batch), so
 * the batch's loss is a mean.
 */
export function chunkedCrossEntropy(
  h: Vec,
  rows: number,
  head: FrozenMatrix,
  targets: Int32Array,
  mask: readonly boolean[],
  gradScale: number,
  gemm: Gemm = JS_GEMM,
  chunkRows = DEFAULT_CHUNK_ROWS,
): CrossEntropyResult {
  const vocab = head.rows;
  const dim = head.cols;
  const dh = zerosLike(h, rows * dim);
  const counted: number[] = [];
  for (let r = 0; r < rows; r++) if (mask[r]) counted.push(r);
  let lossSum = 0;
  for (let c0 = 0; c0 < counted.length; c0 += chunkRows) {
    const chunk = counted.slice(c0, c0 + chunkRows);
    const n = chunk.length;
    const x = zerosLike(h, n * dim);
    chunk.forEach((r, i) => x.set(h.subarray(r * dim, (r + 1) * dim), i * dim));
    // The chunk's logits become its softmax · gradScale − onehot · gradScale in place (the array the product just
    // made: a second [chunk, vocab] array per chunk was megabytes of garbage per step at a 49 152 vocabulary).
    const dLogits = linearForward(x, n, head);
    for (let i = 0; i < n; i++) lossSum += rowLossAndGrad(dLogits, i * vocab, vocab, targets[chunk[i]], gradScale, gemm);
    const dx = linearBackward(dLogits, n, head);
    chunk.forEach((r, i) => dh.set(dx.subarray(i * dim, (i + 1) * dim), r * dim));
  }
  return { lossSum, dh };
}

/**
 * One row of logits (at o, `vocab` long) → its −log p(target), the row turned into softmax · gradScale − onehot ·
 * gradScale in place. Its loops are functions of their own with nothing after them: V8 compiles a long loop alone
 * mid-call, and anything after it not yet run sent that code back to the interpreter, every row.
 */
function rowLossAndGrad(d: Vec, o: number, vocab: number, target: number, gradScale: number, gemm: Gemm): number {
  const max = rowMax(d, o, vocab);
  const targetLogit = d[o + target];
  const sum = gemm.expShifted(d, o, vocab, max);
  const loss = Math.log(sum) + max - targetLogit;
  scaleRow(d, o, vocab, gradScale / sum);
  d[o + target] -= gradScale;
  return loss;
}

function rowMax(d: Vec, o: number, vocab: number): number {
  let max = -Infinity;
  for (let j = 0; j < vocab; j++) if (d[o + j] > max) max = d[o + j];
  return max;
}

function scaleRow(d: Vec, o: number, vocab: number, k: number): void {
  for (let j = 0; j < vocab; j++) d[o + j] *= k;
}
