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
 * The same product for four activation rows at once (at a0..a3, outputs at o0..o3): the weights are unpacked once for
 * the four. It must give each output the bits RowDot gives it (same float operations in the same order; the integer
 * sums are exact in any order) — so a row may also be passed twice, and its slot written twice with the same bits.
 */
export type RowDot4 = (wr: usize, a0: usize, a1: usize, a2: usize, a3: usize, nb: i32, o0: usize, o1: usize, o2: usize, o3: usize) => void;

/**
 * matmulRows with batches taken four activation rows at a time. Three rows left over also go through RowDot4 — the
 * last row repeated, or after a full group the last four rows, recomputing one — one unpacking of the weights instead
 * of three (CPU time, 16384 × 1024: three rows 23–29 % faster on Q4_K, Q6_K and Q8_0, seven 9–13 %). Two rows left
 * over stay single: padded to four they were slower on Q4_K, the type whose batches cost least.
 */
export function matmulRows4(rowDot: RowDot, rowDot4: RowDot4, w: usize, rowBytes: usize, nb: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const outStep = <usize>outStride << 2;
  const ab = <usize>actBytes;
  const left = nAct & 3;
  const padded = left == 3;
  for (let t0 = row0; t0 < row1; t0 += TILE) {
    const t1 = min(t0 + TILE, row1);
    let i = 0;
    for (; i + 4 <= nAct; i += 4) {
      const ad = act + <usize>i * ab;
      const o = out + <usize>i * outStep;
      for (let r = t0; r < t1; r++) {
        const or = o + (<usize>r << 2);
        rowDot4(w + <usize>r * rowBytes, ad, ad + ab, ad + 2 * ab, ad + 3 * ab, nb, or, or + outStep, or + 2 * outStep, or + 3 * outStep);
      }
    }
    if (padded) {
      // Rows first..nAct-1, each a distinct row of the four where possible (j clamps to the last row).
      const first = nAct >= 4 ? nAct - 4 : 0;
      const last = nAct - 1;
      const a0 = act + <usize>first * ab, o0 = out + <usize>first * outStep;
      const j1 = <usize>min(first + 1, last) - first, j2 = <usize>min(first + 2, last) - first, j3 = <usize>min(first + 3, last) - first;
      for (let r = t0; r < t1; r++) {
        const or = o0 + (<usize>r << 2);
        rowDot4(w + <usize>r * rowBytes, a0, a0 + j1 * ab, a0 + j2 * ab, a0 + j3 * ab, nb, or, or + j1 * outStep, or + j2 * outStep, or + j3 * outStep);
      }
      continue;
    }
    for (; i < nAct; i++) {
      const ad = act + <usize>i * ab;
      const o = out + <usize>i * outStep;
      for (let r = t0; r < t1; r++) store<f32>(o + (<usize>r << 2), rowDot(w + <usize>r * rowBytes, ad, nb));
    }
  }
}
