// LoRA's second product, fused with its scale and add (node's engine/lora-weights.ts applies y += scale·B·(A·x)).

/**
 * out[i, j] += scale · Σ_k u[i, k]·Bᵀ[k, j] for rows i < rows and columns j < width: u is [rows, rank] (A·x), Bᵀ is
 * B transposed, [rank, width], read row by row (contiguous) into `acc`, a scratch row of `width` f32. The sum runs over
 * k in order for each row alone (its bits do not depend on the batch), then is scaled and added, each rounded to f32 —
 * no fused multiply-add, so the SIMD128 and relaxed builds give the same bits.
 */
export function loraUp(bt: usize, rank: i32, width: i32, u: usize, rows: i32, scale: f32, out: usize, outStride: i32, acc: usize): void {
  for (let i = 0; i < rows; i++) {
    const ui = u + ((<usize>i * <usize>rank) << 2);
    memory.fill(acc, 0, <usize>width << 2);
    for (let k = 0; k < rank; k++) addScaled(acc, load<f32>(ui + (<usize>k << 2)), bt + ((<usize>k * <usize>width) << 2), width);
    addScaled(out + ((<usize>i * <usize>outStride) << 2), scale, acc, width);
  }
}

/** dst[j] += s · x[j] for j < n: a multiply then an add, each rounded to f32 (no fused multiply-add). */
// @ts-ignore: decorator
@inline function addScaled(dst: usize, s: f32, x: usize, n: i32): void {
  const n4 = n & ~3;
  const sv = f32x4.splat(s);
  for (let j = 0; j < n4; j += 4) {
    const o = <usize>j << 2;
    v128.store(dst + o, f32x4.add(v128.load(dst + o), f32x4.mul(sv, v128.load(x + o))));
  }
  for (let j = n4; j < n; j++) {
    const o = <usize>j << 2;
    store<f32>(dst + o, load<f32>(dst + o) + s * load<f32>(x + o));
  }
}
