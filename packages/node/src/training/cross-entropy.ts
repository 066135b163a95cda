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
 * The head and the loss in chunks of rows: logits = h · headᵀ for `chunkRows` rows at a time, −log p(target) summed
 * over rows whose mask is true (prompt tokens are false), and dh = (softmax − onehot) · head · gradScale for them.
 * The caller's gradScale is 1 / (counted tokens of the batch), so the batch's loss is a mean.
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
  let lossSum = 0;
  for (let r0 = 0; r0 < rows; r0 += chunkRows) {
    const n = Math.min(chunkRows, rows - r0);
    const logits = linearForward(h.subarray(r0 * dim, (r0 + n) * dim), n, head);
    const dLogits = zerosLike(h, n * vocab);
    for (let i = 0; i < n; i++) {
      if (!mask[r0 + i]) continue;
      const o = i * vocab;
      let max = -Infinity;
      for (let j = 0; j < vocab; j++) if (logits[o + j] > max) max = logits[o + j];
      let sum = 0;
      for (let j = 0; j < vocab; j++) sum += Math.exp(logits[o + j] - max);
      const target = targets[r0 + i];
      lossSum += Math.log(sum) + max - logits[o + target];
      for (let j = 0; j < vocab; j++) dLogits[o + j] = (Math.exp(logits[o + j] - max) / sum) * gradScale;
      dLogits[o + target] -= gradScale;
    }
    linearBackward(dLogits, n, head, dh.subarray(r0 * dim, (r0 + n) * dim));
  }
  return { lossSum, dh };
}
