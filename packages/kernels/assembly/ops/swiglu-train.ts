// SwiGLU's forward for training (node's training/swiglu-grad.ts, whose f32 path this is): out = silu(g) · u with
// silu(g) = g / (1 + e^−g), every step in f64 as the host's loop takes it (the exponential is exp-f64.ts, whose
// TypeScript twin that loop calls), so the same bits; 1 + e^−g kept in f64 for the backward.
import { expF64, expF64x2 } from './exp-f64';

/** out[i] = f32((g[i] / den[i]) · u[i]), den[i] = 1 + e^−g[i] (f64), for n values; g, u, out f32. */
export function swigluTrain(g: usize, u: usize, out: usize, den: usize, n: i32): void {
  const one = f64x2.splat(1);
  let i = 0;
  for (; i + 2 <= n; i += 2) {
    const gv = f64x2.promote_low_f32x4(v128.load64_zero(g + (<usize>i << 2)));
    const uv = f64x2.promote_low_f32x4(v128.load64_zero(u + (<usize>i << 2)));
    const d = f64x2.add(one, expF64x2(f64x2.neg(gv)));
    v128.store(den + (<usize>i << 3), d);
    v128.store64_lane(out + (<usize>i << 2), f32x4.demote_f64x2_zero(f64x2.mul(f64x2.div(gv, d), uv)), 0);
  }
  for (; i < n; i++) {
    const gi = <f64>load<f32>(g + (<usize>i << 2));
    const d = 1 + expF64(-gi);
    store<f64>(den + (<usize>i << 3), d);
    store<f32>(out + (<usize>i << 2), <f32>((gi / d) * <f64>load<f32>(u + (<usize>i << 2))));
  }
}
