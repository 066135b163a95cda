// RMSNorm: out = x / sqrt(mean(x²) + eps) · w, row by row. The sum of squares runs in f32x4 lanes then the fixed
// lane order of hsum, so a row's result never depends on the other rows.
import { hsum } from '../simd';

export function rmsNorm(x: usize, w: usize, out: usize, rows: i32, dim: i32, eps: f32): void {
  const d4 = dim & ~3;
  for (let r = 0; r < rows; r++) {
    const xr = x + ((<usize>r * <usize>dim) << 2);
    const or = out + ((<usize>r * <usize>dim) << 2);
    let s = f32x4.splat(0);
    for (let j = 0; j < d4; j += 4) {
      const v = v128.load(xr + (<usize>j << 2));
      s = f32x4.add(s, f32x4.mul(v, v));
    }
    let ss = hsum(s);
    for (let j = d4; j < dim; j++) {
      const v = load<f32>(xr + (<usize>j << 2));
      ss += v * v;
    }
    const scale = f32x4.splat(<f32>1 / Mathf.sqrt(ss / <f32>dim + eps));
    for (let j = 0; j < d4; j += 4) {
      const o = <usize>j << 2;
      v128.store(or + o, f32x4.mul(f32x4.mul(v128.load(xr + o), scale), v128.load(w + o)));
    }
    const sc = f32x4.extract_lane(scale, 0);
    for (let j = d4; j < dim; j++) {
      const o = <usize>j << 2;
      store<f32>(or + o, load<f32>(xr + o) * sc * load<f32>(w + o));
    }
  }
}
