// Small elementwise kernels of the transformer block.
import { f32ToF16 } from '../half';

/** x[i] += y[i] for n values. */
export function addInPlace(x: usize, y: usize, n: i32): void {
  const n4 = n & ~3;
  for (let j = 0; j < n4; j += 4) {
    const o = <usize>j << 2;
    v128.store(x + o, f32x4.add(v128.load(x + o), v128.load(y + o)));
  }
  for (let j = n4; j < n; j++) {
    const o = <usize>j << 2;
    store<f32>(x + o, load<f32>(x + o) + load<f32>(y + o));
  }
}

/** Adds a bias vector of `width` values to columns [0, width) of `rows` rows `stride` apart. */
export function addBias(x: usize, stride: i32, rows: i32, bias: usize, width: i32): void {
  for (let r = 0; r < rows; r++) addInPlace(x + ((<usize>r * <usize>stride) << 2), bias, width);
}

/** out = silu(gate) · up, row by row (gate and up are [rows, n] with their own strides; out is [rows, n]). */
export function swiglu(gate: usize, up: usize, inStride: i32, out: usize, rows: i32, n: i32): void {
  for (let r = 0; r < rows; r++) {
    const g = gate + ((<usize>r * <usize>inStride) << 2);
    const u = up + ((<usize>r * <usize>inStride) << 2);
    const o = out + ((<usize>r * <usize>n) << 2);
    for (let j = 0; j < n; j++) {
      const x = load<f32>(g + (<usize>j << 2));
      store<f32>(o + (<usize>j << 2), (x / (<f32>1 + Mathf.exp(-x))) * load<f32>(u + (<usize>j << 2)));
    }
  }
}

/** swiglu for rows [r0, r1) (a range kernel: threads share a prompt's rows; each row is computed as alone). */
export function swigluRows(gate: usize, up: usize, inStride: i32, out: usize, n: i32, r0: i32, r1: i32): void {
  const skip = (<usize>r0 * <usize>inStride) << 2;
  swiglu(gate + skip, up + skip, inStride, out + ((<usize>r0 * <usize>n) << 2), r1 - r0, n);
}

/** Converts n f32 values to f16 (round to nearest even), as the KV cache stores them. */
export function toF16(src: usize, dst: usize, n: i32): void {
  for (let j = 0; j < n; j++) store<u16>(dst + (<usize>j << 1), <u16>f32ToF16(load<f32>(src + (<usize>j << 2))));
}
