import { f16ToF32, f32ToF16 } from './half';
// Activations are quantised once per row before an integer product, as llama.cpp does, and kept widened to int16 so
// that the inner loops (run once per weight row) do not widen them again.
//
// Q8 activation row (for the 32-value block types): nb = cols / 32 blocks;
//   [nb × f32 scale d][nb × 32 × i16 q]   x ≈ d·q, d = max|x| / 127 per block rounded to f16 (ggml's quantize_row_q8_0).

export const ACT_F32: i32 = 0;
export const ACT_Q8: i32 = 1;

/** Bytes of one prepared activation row of `cols` values in format `fmt`. */
export function actRowBytes(fmt: i32, cols: i32): i32 {
  if (fmt == ACT_Q8) return (cols >> 5) * (4 + 64);
  return cols << 2;
}

/** Quantises `rows` rows of `cols` f32 values at x into the Q8 activation layout at dst. */
export function quantizeQ8(x: usize, rows: i32, cols: i32, dst: usize): void {
  const nb = cols >> 5;
  const rowBytes = <usize>actRowBytes(ACT_Q8, cols);
  for (let r = 0; r < rows; r++) {
    const src = x + ((<usize>r * <usize>cols) << 2);
    const out = dst + <usize>r * rowBytes;
    const qs = out + (<usize>nb << 2);
    for (let b = 0; b < nb; b++) {
      const p = src + (<usize>b << 7);
      let amax: f32 = 0;
      for (let j = 0; j < 32; j++) amax = max(amax, abs(load<f32>(p + (<usize>j << 2))));
      // As ggml: the scale is kept in half precision (block_q8_0.d is f16), the values use 127/amax unrounded.
      const d: f32 = f16ToF32(f32ToF16(amax / 127));
      const id: f32 = amax != 0 ? <f32>127 / amax : 0;
      store<f32>(out + (<usize>b << 2), d);
      const q = qs + (<usize>b << 6);
      for (let j = 0; j < 32; j++) store<i16>(q + (<usize>j << 1), <i16>nearest(load<f32>(p + (<usize>j << 2)) * id));
    }
  }
}
