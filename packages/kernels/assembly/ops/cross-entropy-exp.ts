// The exponentials of training's cross-entropy (node's training/cross-entropy.ts, whose f32 path this is): a row of
// logits shifted by its maximum, e^x with exp-f64.ts's exponential (the host's loop calls its TypeScript twin), so the
// same bits; two at a time in f64x2 lanes, their sum taken in order.
import { expF64, expF64x2 } from './exp-f64';

/** d[j] = f32(e^(d[j] − max)) for j < n (d f32, the difference in f64); returns Σ e^(d[j] − max) in f64, in order. */
export function expShifted(d: usize, n: i32, max: f64): f64 {
  const m = f64x2.splat(max);
  let sum: f64 = 0;
  let j = 0;
  for (; j + 2 <= n; j += 2) {
    const p = d + (<usize>j << 2);
    const e = expF64x2(f64x2.sub(f64x2.promote_low_f32x4(v128.load64_zero(p)), m));
    v128.store64_lane(p, f32x4.demote_f64x2_zero(e), 0);
    sum += f64x2.extract_lane(e, 0);
    sum += f64x2.extract_lane(e, 1);
  }
  if (j < n) {
    const p = d + (<usize>j << 2);
    const e = expF64(<f64>load<f32>(p) - max);
    store<f32>(p, <f32>e);
    sum += e;
  }
  return sum;
}
