// Q8_0: blocks of 32 values, 34 bytes: f16 d, 32 × i8 q; x = d·q.  Activations: Q8 (see activation.ts).
import { halfToF32 } from './half-scale';
import { dot16, hsum } from '../simd';

export const Q8_0_BLOCK_BYTES: usize = 34;

/** Dequantises n values (a multiple of 32) from blocks at src to f32 at dst. */
export function dequantQ8_0(src: usize, dst: usize, n: i32): void {
  const nb = n >> 5;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q8_0_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p));
    const o = dst + (<usize>b << 7);
    for (let j = 0; j < 32; j++) store<f32>(o + (<usize>j << 2), d * <f32>load<i8>(p + 2 + j));
  }
}

// One block of one weight row against one prepared activation block: the integer dot product, as f32x4 partial sums.
// @ts-ignore: decorator
@inline function blockDot(p: usize, a: usize): v128 {
  const acc = i32x4.add(dot16(v128.load(p, 2), a), dot16(v128.load(p, 18), a + 32));
  return f32x4.convert_i32x4_s(acc);
}

/**
 * out[i·outStride + r] = W[r] · act[i] for weight rows [row0, row1) and activation rows [0, nAct). Four weight rows
 * share each activation load; every output is reduced in the same order whatever the batch or row range.
 */
export function matmulQ8_0(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 5;
  const rb = <usize>nb * Q8_0_BLOCK_BYTES;
  let r = row0;
  for (; r + 4 <= row1; r += 4) {
    const w0 = w + <usize>r * rb;
    for (let i = 0; i < nAct; i++) {
      const ad = act + <usize>i * <usize>actBytes; // scales
      const aq = ad + (<usize>nb << 2); // int16 values
      let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
      let p = w0;
      for (let b = 0; b < nb; b++) {
        const a = aq + (<usize>b << 6);
        const xd = load<f32>(ad + (<usize>b << 2));
        s0 = f32x4.add(s0, f32x4.mul(blockDot(p, a), f32x4.splat(halfToF32(load<u16>(p)) * xd)));
        s1 = f32x4.add(s1, f32x4.mul(blockDot(p + rb, a), f32x4.splat(halfToF32(load<u16>(p + rb)) * xd)));
        s2 = f32x4.add(s2, f32x4.mul(blockDot(p + 2 * rb, a), f32x4.splat(halfToF32(load<u16>(p + 2 * rb)) * xd)));
        s3 = f32x4.add(s3, f32x4.mul(blockDot(p + 3 * rb, a), f32x4.splat(halfToF32(load<u16>(p + 3 * rb)) * xd)));
        p += Q8_0_BLOCK_BYTES;
      }
      const o = out + ((<usize>i * <usize>outStride + <usize>r) << 2);
      store<f32>(o, hsum(s0));
      store<f32>(o, hsum(s1), 4);
      store<f32>(o, hsum(s2), 8);
      store<f32>(o, hsum(s3), 12);
    }
  }
  for (; r < row1; r++) {
    const w0 = w + <usize>r * rb;
    for (let i = 0; i < nAct; i++) {
      const ad = act + <usize>i * <usize>actBytes;
      const aq = ad + (<usize>nb << 2);
      let s0 = f32x4.splat(0);
      let p = w0;
      for (let b = 0; b < nb; b++) {
        const xd = load<f32>(ad + (<usize>b << 2));
        s0 = f32x4.add(s0, f32x4.mul(blockDot(p, aq + (<usize>b << 6)), f32x4.splat(halfToF32(load<u16>(p)) * xd)));
        p += Q8_0_BLOCK_BYTES;
      }
      store<f32>(out + ((<usize>i * <usize>outStride + <usize>r) << 2), hsum(s0));
    }
  }
}
