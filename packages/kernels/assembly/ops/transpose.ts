// A matrix transposed: training's products take their transposed operands this way (node's training/kernel-gemm.ts);
// in JS it was a strided loop through typed-array views, a few per cent of a training step.

/** Rows and columns per block: a 16 × 16 f32 block of the source and of the destination (1 KiB each) stay in L1. */
const BLOCK: i32 = 16;

/** dst [cols, rows] = src [rows, cols]ᵀ (f32; src and dst do not overlap). Values are moved, not computed. */
export function transposeF32(src: usize, rows: i32, cols: i32, dst: usize): void {
  for (let i0 = 0; i0 < rows; i0 += BLOCK) {
    const i1 = min(i0 + BLOCK, rows);
    for (let j0 = 0; j0 < cols; j0 += BLOCK) {
      const j1 = min(j0 + BLOCK, cols);
      for (let i = i0; i < i1; i++) {
        const s = src + ((<usize>i * <usize>cols) << 2);
        for (let j = j0; j < j1; j++) store<f32>(dst + ((<usize>j * <usize>rows + <usize>i) << 2), load<f32>(s + (<usize>j << 2)));
      }
    }
  }
}
