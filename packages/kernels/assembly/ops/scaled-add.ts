// acc += scale · p as training adds a product into its accumulator (node's training/gemm.ts addScaled): the product
// and the sum in f64, rounded once to f32 on the store — the arithmetic of `acc[i] += scale * p[i]` on a Float32Array
// in JavaScript, so the same bits.

/** acc[i] = f32(acc[i] + scale · p[i]) for i < n, or f32(scale · p[i]) when `set` is 1; f32 arrays, f64 arithmetic. */
export function scaledAdd(acc: usize, p: usize, n: i32, scale: f64, set: i32): void {
  if (set) {
    for (let i = 0; i < n; i++) {
      const o = <usize>i << 2;
      store<f32>(acc + o, <f32>(scale * <f64>load<f32>(p + o)));
    }
    return;
  }
  const n2 = n & ~1;
  const s = f64x2.splat(scale);
  for (let i = 0; i < n2; i += 2) {
    const o = <usize>i << 2;
    const a = f64x2.promote_low_f32x4(v128.load64_zero(acc + o));
    const x = f64x2.promote_low_f32x4(v128.load64_zero(p + o));
    v128.store64_lane(acc + o, f32x4.demote_f64x2_zero(f64x2.add(a, f64x2.mul(s, x))), 0);
  }
  for (let i = n2; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(acc + o, <f32>(<f64>load<f32>(acc + o) + scale * <f64>load<f32>(p + o)));
  }
}
