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
