// Rotary position embedding, in place, on `heads` heads of `headDim` per row. `table` holds per row headDim/2 cos
// values then headDim/2 sin values (computed by the host in f64 from the row's position). Two layouts of the rotated
// pairs: interleaved (x[2i], x[2i+1]) as GGUF llama stores Q/K rows, and half (x[i], x[i+d/2]) as Hugging Face and
// GGUF qwen2 (NEOX) do.

export const ROPE_INTERLEAVED: i32 = 0;
export const ROPE_HALF: i32 = 1;

export function rope(x: usize, rowStride: i32, rows: i32, heads: i32, headDim: i32, table: usize, mode: i32): void {
  const half = headDim >> 1;
  for (let r = 0; r < rows; r++) {
    const cosr = table + ((<usize>r * <usize>headDim) << 2);
    const sinr = cosr + (<usize>half << 2);
    for (let h = 0; h < heads; h++) {
      const p = x + ((<usize>r * <usize>rowStride + <usize>h * <usize>headDim) << 2);
      for (let i = 0; i < half; i++) {
        const c = load<f32>(cosr + (<usize>i << 2));
        const s = load<f32>(sinr + (<usize>i << 2));
        const a = mode == ROPE_HALF ? p + (<usize>i << 2) : p + (<usize>i << 3);
        const b = mode == ROPE_HALF ? a + (<usize>half << 2) : a + 4;
        const x0 = load<f32>(a);
        const x1 = load<f32>(b);
        store<f32>(a, x0 * c - x1 * s);
        store<f32>(b, x0 * s + x1 * c);
      }
    }
  }
}
