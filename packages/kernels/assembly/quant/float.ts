// Unquantised weights: F32, F16 and BF16 rows, multiplied with f32 activations (no activation quantisation).
import { bf16ToF32 } from '../half';
import { halfScale, halfToF32 } from './half-scale';
import { hsum } from '../simd';

export const FLOAT_F32: i32 = 0;
export const FLOAT_F16: i32 = 1;
export const FLOAT_BF16: i32 = 30;

// @ts-ignore: decorator
@inline function load4(kind: i32, p: usize): v128 {
  if (kind == FLOAT_F32) return v128.load(p);
  // Widen four 16-bit values to f32 lanes.
  const h = i32x4.extend_low_i16x8_u(v128.load64_zero(p));
  if (kind == FLOAT_BF16) return i32x4.shl(h, 16);
  // f16 → f32: exponent rebased by multiplying with 2^112, sign moved to bit 31. Subnormal halves (~0.1% of typical
  // weights) take a slow multiply on Intel, still cheaper overall than half-scale.ts's exact select (measured 2x).
  const mag = f32x4.mul(i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13), f32x4.splat(5.192296858534828e33));
  return v128.or(mag, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

/** Bytes of one element. */
// @ts-ignore: decorator
@inline function elemBytes(kind: i32): usize {
  return kind == FLOAT_F32 ? 4 : 2;
}

export function dequantFloat(kind: i32, src: usize, dst: usize, n: i32): void {
  for (let j = 0; j < n; j++) {
    let v: f32;
    if (kind == FLOAT_F32) v = load<f32>(src + (<usize>j << 2));
    else if (kind == FLOAT_BF16) v = bf16ToF32(load<u16>(src + (<usize>j << 1)));
    else v = halfToF32(load<u16>(src + (<usize>j << 1)));
    store<f32>(dst + (<usize>j << 2), v);
  }
}

/** out[i·outStride + r] = W[r] · x[i] for f32/f16/bf16 rows (cols a multiple of 4; a scalar tail otherwise). */
export function matmulFloat(kind: i32, w: usize, cols: i32, row0: i32, row1: i32, act: usize, nAct: i32, out: usize, outStride: i32): void {
  const eb = elemBytes(kind);
  const rb = <usize>cols * eb;
  const c4 = cols & ~3;
  for (let r = row0; r < row1; r++) {
    const wr = w + <usize>r * rb;
    for (let i = 0; i < nAct; i++) {
      const x = act + ((<usize>i * <usize>cols) << 2);
      let s = f32x4.splat(0);
      for (let j = 0; j < c4; j += 4) {
        s = f32x4.add(s, f32x4.mul(load4(kind, wr + <usize>j * eb), v128.load(x + (<usize>j << 2))));
      }
      let t = hsum(s);
      for (let j = c4; j < cols; j++) {
        let v: f32;
        if (kind == FLOAT_F32) v = load<f32>(wr + (<usize>j << 2));
        else if (kind == FLOAT_BF16) v = bf16ToF32(load<u16>(wr + (<usize>j << 1)));
        else v = halfScale(load<u16>(wr + (<usize>j << 1)));
        t += v * load<f32>(x + (<usize>j << 2));
      }
      store<f32>(out + ((<usize>i * <usize>outStride + <usize>r) << 2), t);
    }
  }
}
