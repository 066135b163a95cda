// The loop over outputs shared by the quantised products. Weight rows are taken in tiles, and each activation row
// meets a whole tile while it sits in L1: a batch (prefill) then streams its activations once per tile instead of
// once per weight row. Every output is still one call of the type's row product, so it has the same bits whatever
// the tile, the row range or the batch.

/** W[r]·act for one weight row (at wr) and one prepared activation row (at ad) of nb blocks. */
export type RowDot = (wr: usize, ad: usize, nb: i32) => f32;

/** Weight rows per tile: 16 rows of 4096 values are 37–74 KiB of 4–8-bit weights (L2), the activation row stays in L1. */
const TILE: i32 = 16;

export function matmulRows(rowDot: RowDot, w: usize, rowBytes: usize, nb: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  for (let t0 = row0; t0 < row1; t0 += TILE) {
    const t1 = min(t0 + TILE, row1);
    for (let i = 0; i < nAct; i++) {
      const ad = act + <usize>i * <usize>actBytes;
      const o = out + ((<usize>i * <usize>outStride) << 2);
      for (let r = t0; r < t1; r++) store<f32>(o + (<usize>r << 2), rowDot(w + <usize>r * rowBytes, ad, nb));
    }
  }
}

/**
 * The same product for four activation rows at once (at ad + i·actBytes, outputs at o + i·outStep): the weights are
 * unpacked once for the four. It must give each output the bits RowDot gives it (same float operations in the same
 * order; the integer sums are exact in any order).
 */
export type RowDot4 = (wr: usize, ad: usize, actBytes: usize, nb: i32, o: usize, outStep: usize) => void;

/** matmulRows with batches taken four activation rows at a time (the rest one by one). */
export function matmulRows4(rowDot: RowDot, rowDot4: RowDot4, w: usize, rowBytes: usize, nb: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const outStep = <usize>outStride << 2;
  for (let t0 = row0; t0 < row1; t0 += TILE) {
    const t1 = min(t0 + TILE, row1);
    let i = 0;
    for (; i + 4 <= nAct; i += 4) {
      const ad = act + <usize>i * <usize>actBytes;
      const o = out + <usize>i * outStep;
      for (let r = t0; r < t1; r++) rowDot4(w + <usize>r * rowBytes, ad, <usize>actBytes, nb, o + (<usize>r << 2), outStep);
    }
    for (; i < nAct; i++) {
      const ad = act + <usize>i * <usize>actBytes;
      const o = out + <usize>i * outStep;
      for (let r = t0; r < t1; r++) store<f32>(o + (<usize>r << 2), rowDot(w + <usize>r * rowBytes, ad, nb));
    }
  }
}
