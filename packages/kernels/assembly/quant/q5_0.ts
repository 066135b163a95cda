// Q5_0 (ggml block_q5_0): blocks of 32 values, 22 bytes: f16 d, u8 qh[4] (a little-endian u32 of fifth bits),
// u8 qs[16];  x[j] = d·(((qs[j] & 15) | bit j of qh << 4) − 16), x[j + 16] = d·(((qs[j] >> 4) | bit j+16 << 4) − 16).
// Activations: Q8 (as ggml's vec_dot_q5_0_q8_0).
import { halfScale, halfToF32 } from './half-scale';
import { matmulRows4 } from './row-tiles';
import { hsum, laneOrder, pin } from '../simd';
import { fifthBits16 } from './fifth-bits';
import { sdot32, unpackedSDot32, nibHi, nibLo } from './int-dot';

export const Q5_0_BLOCK_BYTES: usize = 22;

export function dequantQ5_0(src: usize, dst: usize, n: i32): void {
  const nb = n >> 5;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q5_0_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p));
    const qh = load<u32>(p, 2);
    const o = dst + (<usize>b << 7);
    for (let j = 0; j < 16; j++) {
      const q = <i32>load<u8>(p + 6 + j);
      const x0 = ((q & 15) | (((qh >> j) & 1) << 4)) - 16;
      const x1 = ((q >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
      store<f32>(o + (<usize>j << 2), <f32>x0 * d);
      store<f32>(o + (<usize>(j + 16) << 2), <f32>x1 * d);
    }
  }
}

// @ts-ignore: decorator
@inline function blockDot(p: usize, a: usize): v128 {
  const v = v128.load(p, 6);
  // (nibble | bit << 4) − 16 = nibble | (bit ? 0 : 0xF0)
  const lo = v128.or(nibLo(v), fifthBits16(p + 2));
  const hi = v128.or(nibHi(v), fifthBits16(p + 4));
  return sdot32(lo, hi, a);
}

// @ts-ignore: decorator
@inline function rowDot(wr: usize, ad: usize, nb: i32): f32 {
  const aq = ad + (<usize>nb << 2);
  let s = f32x4.splat(0);
  let p = wr;
  for (let b = 0; b < nb; b++) {
    const scale = halfScale(load<u16>(p)) * load<f32>(ad + (<usize>b << 2));
    s = f32x4.add(s, f32x4.mul(f32x4.convert_i32x4_s(blockDot(p, aq + (<usize>b << 6))), f32x4.splat(scale)));
    p += Q5_0_BLOCK_BYTES;
  }
  return hsum(s);
}

function rowQ5_0(wr: usize, ad: usize, nb: i32): f32 {
  return rowDot(wr, ad, nb);
}

/** rowDot for four activation rows: each block is unpacked and widened once. */
function rowQ5_0_4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const qOff = <usize>nb << 2;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let p = wr;
  for (let b = 0; b < nb; b++) {
    const v = v128.load(p, 6);
    const lo = v128.or(nibLo(v), fifthBits16(p + 2)), hi = v128.or(nibHi(v), fifthBits16(p + 4));
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
    p += Q5_0_BLOCK_BYTES;
  }
  store<f32>(o, hsum(s0));
  store<f32>(o1, hsum(s1));
  store<f32>(o2, hsum(s2));
  store<f32>(o3, hsum(s3));
}

export function matmulQ5_0(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 5;
  matmulRows4(rowQ5_0, rowQ5_0_4, w, <usize>nb * Q5_0_BLOCK_BYTES, nb, row0, row1, act, actBytes, nAct, out, outStride);
}
