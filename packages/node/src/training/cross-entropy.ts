import { linearBackward, linearForward } from './linear-grad.js';
import type { FrozenMatrix } from './gemm.js';
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
    const logits = linearForward(x, n, head);
    const dLogits = zerosLike(h, n * vocab);
    for (let i = 0; i < n; i++) {
      const o = i * vocab;
      let max = -Infinity;
      for (let j = 0; j < vocab; j++) if (logits[o + j] > max) max = logits[o + j];
      // e^(z − max) kept in dLogits's row, then scaled into softmax · gradScale in place.
      let sum = 0;
      for (let j = 0; j < vocab; j++) sum += dLogits[o + j] = Math.exp(logits[o + j] - max);
      const target = targets[chunk[i]];
      lossSum += Math.log(sum) + max - logits[o + target];
      const k = gradScale / sum;
      for (let j = 0; j < vocab; j++) dLogits[o + j] *= k;
      dLogits[o + target] -= gradScale;
    }
    const dx = linearBackward(dLogits, n, head);
    chunk.forEach((r, i) => dh.set(dx.subarray(i * dim, (i + 1) * dim), r * dim));
  }
  return { lossSum, dh };
}
