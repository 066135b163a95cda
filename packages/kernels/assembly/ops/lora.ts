// LoRA's second product, fused with its scale and add (node's engine/lora-weights.ts applies y += scale·B·(A·x)).

/**
 * out[i, j] += scale · Σ_k u[i, k]·Bᵀ[k, j] for rows i < rows and columns j < width: u is [rows, rank] (A·x), Bᵀ is
 * B transposed, [rank, width], read row by row (contiguous) into `acc`, a scratch row of `width` f32. The sum runs over
 * k in order for each row alone (its bits do not depend on the batch), then is scaled and added, each rounded to f32 —
 * no fused multiply-add, so the SIMD128 and relaxed builds give the same bits.
 */
export function loraUp(bt: usize, rank: i32, width: i32, u: usize, rows: i32, scale: f32, out: usize, outStride: i32, acc: usize): void {
  const w4 = width & ~3;
  const sv = f32x4.splat(scale);
  for (let i = 0; i < rows; i++) {
    const ui = u + ((<usize>i * <usize>rank) << 2);
    memory.fill(acc, 0, <usize>width << 2);
    for (let k = 0; k < rank; k++) {
      const uk = load<f32>(ui + (<usize>k << 2));
      const ukv = f32x4.splat(uk);
      const row = bt + ((<usize>k * <usize>width) << 2);
      for (let j = 0; j < w4; j += 4) {
        const o = <usize>j << 2;
        v128.store(acc + o, f32x4.add(v128.load(acc + o), f32x4.mul(ukv, v128.load(row + o))));
      }
      for (let j = w4; j < width; j++) {
        const o = <usize>j << 2;
        store<f32>(acc + o, load<f32>(acc + o) + uk * load<f32>(row + o));
      }
    }
    const oi = out + ((<usize>i * <usize>outStride) << 2);
    for (let j = 0; j < w4; j += 4) {
      const o = <usize>j << 2;
      v128.store(oi + o, f32x4.add(v128.load(oi + o), f32x4.mul(sv, v128.load(acc + o))));
    }
    for (let j = w4; j < width; j++) {
      const o = <usize>j << 2;
      store<f32>(oi + o, load<f32>(oi + o) + scale * load<f32>(acc + o));
    }
  }
}
