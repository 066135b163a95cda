// Q5_1 (ggml block_q5_1): blocks of 32 values, 24 bytes: f16 d, f16 m, u8 qh[4] (a little-endian u32 of fifth
// bits), u8 qs[16];  x[j] = d·((qs[j] & 15) | bit j of qh << 4) + m, x[j + 16] = d·((qs[j] >> 4) | bit j+16 << 4) + m.
// Activations: Q8_1, or Q8_1S in the relaxed build (as ggml's vec_dot_q5_1_q8_1): W·x = d·xd·Σq·a + m·s.
import { halfScale, halfToF32 } from './half-scale';
import { matmulRows4 } from './row-tiles';
import { hsum, laneOrder, pin } from '../simd';
import { fifthBits16 } from './fifth-bits';
import { dot32, KACT_BYTES, udot32, unpackedUDot32, nibHi, nibLo } from './int-dot';

export const Q5_1_BLOCK_BYTES: usize = 24;

export function dequantQ5_1(src: usize, dst: usize, n: i32): void {
  const nb = n >> 5;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q5_1_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p));
    const m = halfToF32(load<u16>(p, 2));
    const qh = load<u32>(p, 4);
    const o = dst + (<usize>b << 7);
    for (let j = 0; j < 16; j++) {
      const q = <i32>load<u8>(p + 8 + j);
      const x0 = (q & 15) | (((qh >> j) & 1) << 4);
      const x1 = (q >> 4) | (((qh >> (j + 16)) & 1) << 4);
      store<f32>(o + (<usize>j << 2), <f32>x0 * d + m);
      store<f32>(o + (<usize>(j + 16) << 2), <f32>x1 * d + m);
    }
  }
}

// @ts-ignore: decorator
@inline function rowDot(wr: usize, ad: usize, nb: i32): f32 {
  const as = ad + (<usize>nb << 2);
  const aq = ad + (<usize>nb << 3);
  const sixteen = i8x16.splat(0x10);
  let s = f32x4.splat(0);
  let t: f32 = 0;
  let p = wr;
  for (let b = 0; b < nb; b++) {
    const v = v128.load(p, 8);
    // fifth-bits.ts gives (q − 16) bytes; + 16 makes them q.
    const lo = i8x16.add(v128.or(nibLo(v), fifthBits16(p + 4)), sixteen);
    const hi = i8x16.add(v128.or(nibHi(v), fifthBits16(p + 6)), sixteen);
    const a = aq + (<usize>b << 5) * KACT_BYTES;
    const idot = ASC_FEATURE_RELAXED_SIMD ? udot32(laneOrder(lo), laneOrder(hi), a) : dot32(lo, hi, a);
    const scale = halfScale(load<u16>(p)) * load<f32>(ad + (<usize>b << 2));
    s = f32x4.add(s, f32x4.mul(f32x4.convert_i32x4_s(idot), f32x4.splat(scale)));
    t += halfScale(load<u16>(p, 2)) * load<f32>(as + (<usize>b << 2));
    p += Q5_1_BLOCK_BYTES;
  }
  return hsum(s) + t;
}

function rowQ5_1(wr: usize, ad: usize, nb: i32): f32 {
  return rowDot(wr, ad, nb);
}

/** rowDot for four activation rows: each block is unpacked and widened once. */
function rowQ5_1_4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const sOff = <usize>nb << 2, qOff = <usize>nb << 3;
  const sixteen = i8x16.splat(0x10);
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
  let p = wr;
  for (let b = 0; b < nb; b++) {
    const v = v128.load(p, 8);
    const lo = i8x16.add(v128.or(nibLo(v), fifthBits16(p + 4)), sixteen);
    const hi = i8x16.add(v128.or(nibHi(v), fifthBits16(p + 6)), sixteen);
    const w0 = ASC_FEATURE_RELAXED_SIMD ? laneOrder(lo) : i16x8.extend_low_i8x16_u(lo);
    const w1 = ASC_FEATURE_RELAXED_SIMD ? laneOrder(hi) : i16x8.extend_high_i8x16_u(lo);
    const w2 = i16x8.extend_low_i8x16_u(hi), w3 = i16x8.extend_high_i8x16_u(hi); // unused in the relaxed build
    const d = halfScale(load<u16>(p)), m = halfScale(load<u16>(p, 2));
    const a = qOff + (<usize>b << 5) * KACT_BYTES, xo = <usize>b << 2;
    s0 = f32x4.add(s0, f32x4.mul(f32x4.convert_i32x4_s(unpackedUDot32(w0, w1, w2, w3, ad + a)), f32x4.splat(d * load<f32>(ad + xo))));
    pin(o, s0);
    s1 = f32x4.add(s1, f32x4.mul(f32x4.convert_i32x4_s(unpackedUDot32(w0, w1, w2, w3, a1 + a)), f32x4.splat(d * load<f32>(a1 + xo))));
    pin(o1, s1);
    s2 = f32x4.add(s2, f32x4.mul(f32x4.convert_i32x4_s(unpackedUDot32(w0, w1, w2, w3, a2 + a)), f32x4.splat(d * load<f32>(a2 + xo))));
    pin(o2, s2);
    s3 = f32x4.add(s3, f32x4.mul(f32x4.convert_i32x4_s(unpackedUDot32(w0, w1, w2, w3, a3 + a)), f32x4.splat(d * load<f32>(a3 + xo))));
    t0 += m * load<f32>(ad + sOff + xo);
    t1 += m * load<f32>(a1 + sOff + xo);
    t2 += m * load<f32>(a2 + sOff + xo);
    t3 += m * load<f32>(a3 + sOff + xo);
    p += Q5_1_BLOCK_BYTES;
  }
  store<f32>(o, hsum(s0) + t0);
  store<f32>(o1, hsum(s1) + t1);
  store<f32>(o2, hsum(s2) + t2);
  store<f32>(o3, hsum(s3) + t3);
}

export function matmulQ5_1(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 5;
  matmulRows4(rowQ5_1, rowQ5_1_4, w, <usize>nb * Q5_1_BLOCK_BYTES, nb, row0, row1, act, actBytes, nAct, out, outStride);
}
