// Q4_0 (ggml block_q4_0): blocks of 32 values, 18 bytes: f16 d, u8 qs[16];
//   x[j] = d·((qs[j] & 15) − 8), x[j + 16] = d·((qs[j] >> 4) − 8)   (j < 16).
// Activations: Q8, or Q8S in the relaxed build (activation.ts), as ggml's vec_dot_q4_0_q8_0.
import { halfScale, halfToF32 } from './half-scale';
import { matmulRows4 } from './row-tiles';
import { hsum, laneOrder, pin } from '../simd';
import { sdot32, unpackedSDot32, nibHi, nibLo } from './int-dot';

export const Q4_0_BLOCK_BYTES: usize = 18;

export function dequantQ4_0(src: usize, dst: usize, n: i32): void {
  const nb = n >> 5;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q4_0_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p));
    const o = dst + (<usize>b << 7);
    for (let j = 0; j < 16; j++) {
      const q = <i32>load<u8>(p + 2 + j);
      store<f32>(o + (<usize>j << 2), <f32>((q & 15) - 8) * d);
      store<f32>(o + (<usize>(j + 16) << 2), <f32>((q >> 4) - 8) * d);
    }
  }
}

/** One block's integer product with one prepared activation block (i32x4 partial sums). */
// @ts-ignore: decorator
@inline function blockDot(p: usize, a: usize): v128 {
  const v = v128.load(p, 2);
  const eight = i8x16.splat(8);
  return sdot32(i8x16.sub(nibLo(v), eight), i8x16.sub(nibHi(v), eight), a);
}

/** W[r]·act for one weight row and one activation row; the single definition of a result's reduction order. */
// @ts-ignore: decorator
@inline function rowDot(wr: usize, ad: usize, nb: i32): f32 {
  const aq = ad + (<usize>nb << 2);
  let s = f32x4.splat(0);
  let p = wr;
  for (let b = 0; b < nb; b++) {
    const scale = halfScale(load<u16>(p)) * load<f32>(ad + (<usize>b << 2));
    s = f32x4.add(s, f32x4.mul(f32x4.convert_i32x4_s(blockDot(p, aq + (<usize>b << 6))), f32x4.splat(scale)));
    p += Q4_0_BLOCK_BYTES;
  }
  return hsum(s);
}

function rowQ4_0(wr: usize, ad: usize, nb: i32): f32 {
  return rowDot(wr, ad, nb);
}

/** rowDot for four activation rows: each block is unpacked and widened once. */
function rowQ4_0_4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const qOff = <usize>nb << 2;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let p = wr;
  for (let b = 0; b < nb; b++) {
    const v = v128.load(p, 2);
    const lo = i8x16.sub(nibLo(v), i8x16.splat(8)), hi = i8x16.sub(nibHi(v), i8x16.splat(8));
    const w0 = ASC_FEATURE_RELAXED_SIMD ? laneOrder(lo) : i16x8.extend_low_i8x16_s(lo);
    const w1 = ASC_FEATURE_RELAXED_SIMD ? laneOrder(hi) : i16x8.extend_high_i8x16_s(lo);
    const w2 = i16x8.extend_low_i8x16_s(hi), w3 = i16x8.extend_high_i8x16_s(hi); // unused in the relaxed build
    const d = halfScale(load<u16>(p));
    const a = qOff + (<usize>b << 6), xo = <usize>b << 2;
    s0 = f32x4.add(s0, f32x4.mul(f32x4.convert_i32x4_s(unpackedSDot32(w0, w1, w2, w3, ad + a)), f32x4.splat(d * load<f32>(ad + xo))));
    pin(o, s0);
    s1 = f32x4.add(s1, f32x4.mul(f32x4.convert_i32x4_s(unpackedSDot32(w0, w1, w2, w3, a1 + a)), f32x4.splat(d * load<f32>(a1 + xo))));
    pin(o1, s1);
    s2 = f32x4.add(s2, f32x4.mul(f32x4.convert_i32x4_s(unpackedSDot32(w0, w1, w2, w3, a2 + a)), f32x4.splat(d * load<f32>(a2 + xo))));
    pin(o2, s2);
    s3 = f32x4.add(s3, f32x4.mul(f32x4.convert_i32x4_s(unpackedSDot32(w0, w1, w2, w3, a3 + a)), f32x4.splat(d * load<f32>(a3 + xo))));
    p += Q4_0_BLOCK_BYTES;
  }
  store<f32>(o, hsum(s0));
  store<f32>(o1, hsum(s1));
  store<f32>(o2, hsum(s2));
  store<f32>(o3, hsum(s3));
}

export function matmulQ4_0(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 5;
  matmulRows4(rowQ4_0, rowQ4_0_4, w, <usize>nb * Q4_0_BLOCK_BYTES, nb, row0, row1, act, actBytes, nAct, out, outStride);
}
