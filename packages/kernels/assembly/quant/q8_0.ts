// Q8_0: blocks of 32 values, 34 bytes: f16 d, 32 × i8 q; x = d·q.  Activations: Q8 (see activation.ts).
import { f16ToF32 } from '../half';
import { dot16, hsum } from '../simd';

export const Q8_0_BLOCK_BYTES: usize = 34;

/** Dequantises n values (a multiple of 32) from blocks at src to f32 at dst. */
export function dequantQ8_0(src: usize, dst: usize, n: i32): void {
  const nb = n >> 5;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q8_0_BLOCK_BYTES;
    const d = f16ToF32(load<u16>(p));
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
 * out[i·outStride + r] = W[r] · act[i] for weight rows [row0, row1) and activation rows [0, nAct). One activation row
 * (decode): four weight rows share each activation load. Several (a batch, a prompt): each weight block is widened
 * once and multiplied with four activation rows. Every output is reduced in the same order, with the same float
 * operations, on every path — a row's result is the same whatever the batch or row range.
 */
export function matmulQ8_0(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  if (nAct == 1) matvecQ8_0(w, cols, row0, row1, act, out);
  else matmulTiledQ8_0(w, cols, row0, row1, act, actBytes, nAct, out, outStride);
}

function matvecQ8_0(w: usize, cols: i32, row0: i32, row1: i32, act: usize, out: usize): void {
  const nb = cols >> 5;
  const rb = <usize>nb * Q8_0_BLOCK_BYTES;
  const ad = act; // scales
  const aq = ad + (<usize>nb << 2); // int16 values
  let r = row0;
  for (; r + 4 <= row1; r += 4) {
    let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
    let p = w + <usize>r * rb;
    for (let b = 0; b < nb; b++) {
      const a = aq + (<usize>b << 6);
      const xd = load<f32>(ad + (<usize>b << 2));
      s0 = f32x4.add(s0, f32x4.mul(blockDot(p, a), f32x4.splat(f16ToF32(load<u16>(p)) * xd)));
      s1 = f32x4.add(s1, f32x4.mul(blockDot(p + rb, a), f32x4.splat(f16ToF32(load<u16>(p + rb)) * xd)));
      s2 = f32x4.add(s2, f32x4.mul(blockDot(p + 2 * rb, a), f32x4.splat(f16ToF32(load<u16>(p + 2 * rb)) * xd)));
      s3 = f32x4.add(s3, f32x4.mul(blockDot(p + 3 * rb, a), f32x4.splat(f16ToF32(load<u16>(p + 3 * rb)) * xd)));
      p += Q8_0_BLOCK_BYTES;
    }
    const o = out + (<usize>r << 2);
    store<f32>(o, hsum(s0));
    store<f32>(o, hsum(s1), 4);
    store<f32>(o, hsum(s2), 8);
    store<f32>(o, hsum(s3), 12);
  }
  for (; r < row1; r++) {
    let s0 = f32x4.splat(0);
    let p = w + <usize>r * rb;
    for (let b = 0; b < nb; b++) {
      const xd = load<f32>(ad + (<usize>b << 2));
      s0 = f32x4.add(s0, f32x4.mul(blockDot(p, aq + (<usize>b << 6)), f32x4.splat(f16ToF32(load<u16>(p)) * xd)));
      p += Q8_0_BLOCK_BYTES;
    }
    store<f32>(out + (<usize>r << 2), hsum(s0));
  }
}

// The integer dot product of one widened weight block (four i16x8) with one prepared activation block.
// @ts-ignore: decorator
@inline function wideDot(w0: v128, w1: v128, w2: v128, w3: v128, a: usize): v128 {
  const lo = i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(a)), i32x4.dot_i16x8_s(w1, v128.load(a, 16)));
  const hi = i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(a, 32)), i32x4.dot_i16x8_s(w3, v128.load(a, 48)));
  return f32x4.convert_i32x4_s(i32x4.add(lo, hi));
}

function matmulTiledQ8_0(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 5;
  const rb = <usize>nb * Q8_0_BLOCK_BYTES;
  const ab = <usize>actBytes;
  const qoff = <usize>nb << 2; // int16 values follow the scales in each activation row
  for (let r = row0; r < row1; r++) {
    const wr = w + <usize>r * rb;
    let i = 0;
    for (; i + 4 <= nAct; i += 4) {
      const a0 = act + <usize>i * ab;
      let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
      let p = wr;
      for (let b = 0; b < nb; b++) {
        // Widen the weight block once for the four activation rows.
        const v0 = v128.load(p, 2);
        const v1 = v128.load(p, 18);
        const w0 = i16x8.extend_low_i8x16_s(v0), w1 = i16x8.extend_high_i8x16_s(v0);
        const w2 = i16x8.extend_low_i8x16_s(v1), w3 = i16x8.extend_high_i8x16_s(v1);
        const dw = f16ToF32(load<u16>(p));
        const ao = qoff + (<usize>b << 6);
        const so = <usize>b << 2;
        s0 = f32x4.add(s0, f32x4.mul(wideDot(w0, w1, w2, w3, a0 + ao), f32x4.splat(dw * load<f32>(a0 + so))));
        s1 = f32x4.add(s1, f32x4.mul(wideDot(w0, w1, w2, w3, a0 + ab + ao), f32x4.splat(dw * load<f32>(a0 + ab + so))));
        s2 = f32x4.add(s2, f32x4.mul(wideDot(w0, w1, w2, w3, a0 + 2 * ab + ao), f32x4.splat(dw * load<f32>(a0 + 2 * ab + so))));
        s3 = f32x4.add(s3, f32x4.mul(wideDot(w0, w1, w2, w3, a0 + 3 * ab + ao), f32x4.splat(dw * load<f32>(a0 + 3 * ab + so))));
        p += Q8_0_BLOCK_BYTES;
      }
      const o = out + ((<usize>i * <usize>outStride + <usize>r) << 2);
      const os = <usize>outStride << 2;
      store<f32>(o, hsum(s0));
      store<f32>(o + os, hsum(s1));
      store<f32>(o + 2 * os, hsum(s2));
      store<f32>(o + 3 * os, hsum(s3));
    }
    for (; i < nAct; i++) {
      const a0 = act + <usize>i * ab;
      let s0 = f32x4.splat(0);
      let p = wr;
      for (let b = 0; b < nb; b++) {
        const xd = load<f32>(a0 + (<usize>b << 2));
        s0 = f32x4.add(s0, f32x4.mul(blockDot(p, a0 + qoff + (<usize>b << 6)), f32x4.splat(f16ToF32(load<u16>(p)) * xd)));
        p += Q8_0_BLOCK_BYTES;
      }
      store<f32>(out + ((<usize>i * <usize>outStride + <usize>r) << 2), hsum(s0));
    }
  }
}
