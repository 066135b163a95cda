// Q5_K (ggml block_q5_K): super-blocks of 256 values, 176 bytes: f16 d, f16 dmin, u8 scales[12], u8 qh[32],
// u8 qs[128]. Eight sub-blocks of 32 with 6-bit scale sc and minimum m (k-scales.ts), as Q4_K; sub-block 2k takes
// the low nibbles of qs[32k..32k+31] plus bit 2k of qh[l] as its fifth bit, 2k+1 the high nibbles plus bit 2k+1:
//   x = d·sc·q − dmin·m, q in 0..31.   Activations: Q8_K, or Q8_KS in the relaxed build (as ggml's vec_dot_q5_K_q8_K).
import { halfScale, halfToF32 } from './half-scale';
import { matmulRows4 } from './row-tiles';
import { hsum, LANE_ORDER, laneOrder, MASK_0F, MASK_10, pin } from '../simd';
import { dot32, KACT_BYTES, nibHi, nibLo, udot32, unpackedUDot32 } from './int-dot';
import { byteOf, minsDot, minsK4, scalesK4 } from './k-scales';

export const Q5_K_BLOCK_BYTES: usize = 176;

export function dequantQ5_K(src: usize, dst: usize, n: i32): void {
  const nb = n >> 8;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q5_K_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p));
    const dmin = halfToF32(load<u16>(p, 2));
    const sc = scalesK4(p + 4), mn = minsK4(p + 4);
    const o = dst + (<usize>b << 10);
    for (let k = 0; k < 4; k++) {
      const d1 = d * <f32>byteOf(sc, 2 * k), m1 = dmin * <f32>byteOf(mn, 2 * k);
      const d2 = d * <f32>byteOf(sc, 2 * k + 1), m2 = dmin * <f32>byteOf(mn, 2 * k + 1);
      const q = p + 48 + (<usize>k << 5);
      const y = o + (<usize>k << 8);
      for (let l = 0; l < 32; l++) {
        const v = <i32>load<u8>(q + l);
        const hb = <i32>load<u8>(p + 16 + l);
        store<f32>(y + (<usize>l << 2), d1 * <f32>((v & 15) + (((hb >> (2 * k)) & 1) << 4)) - m1);
        store<f32>(y + (<usize>(l + 32) << 2), d2 * <f32>((v >> 4) + (((hb >> (2 * k + 1)) & 1) << 4)) - m2);
      }
    }
  }
}

/**
 * Fifth bits: 0x10 in each byte of h whose bit 0 (lo) or bit 1 (hi) is set. h is shifted right by two bits a pair
 * of sub-blocks (16-bit shifts: what crosses into a byte lands above the bits read, and the mask drops it).
 */
// @ts-ignore: decorator
@inline function fifthLo(h: v128, m10: v128): v128 {
  return v128.and(i16x8.shl(h, 4), m10);
}
// @ts-ignore: decorator
@inline function fifthHi(h: v128, m10: v128): v128 {
  return v128.and(i16x8.shl(h, 3), m10);
}

/**
 * Sub-blocks 2k and 2k+1 (the 32 bytes at q; fifth bits in bits 0 and 1 of h0, h1, already shifted down by 2k)
 * against their 64 activations at a, times their scales (sLo, sHi: splatted), added to isum.
 */
// @ts-ignore: decorator
@inline function pairDot(q: usize, h0: v128, h1: v128, a: usize, ord: v128, m0f: v128, m10: v128, sLo: v128, sHi: v128, isum: v128): v128 {
  let v0 = v128.load(q);
  let v1 = v128.load(q, 16);
  if (ASC_FEATURE_RELAXED_SIMD) {
    v0 = i8x16.relaxed_swizzle(v0, ord);
    v1 = i8x16.relaxed_swizzle(v1, ord);
  }
  const wl0 = v128.or(v128.and(v0, m0f), fifthLo(h0, m10)), wl1 = v128.or(v128.and(v1, m0f), fifthLo(h1, m10));
  const wh0 = v128.or(v128.and(i16x8.shr_u(v0, 4), m0f), fifthHi(h0, m10));
  const wh1 = v128.or(v128.and(i16x8.shr_u(v1, 4), m0f), fifthHi(h1, m10));
  const lo = ASC_FEATURE_RELAXED_SIMD ? udot32(wl0, wl1, a) : dot32(wl0, wl1, a);
  const hi = ASC_FEATURE_RELAXED_SIMD ? udot32(wh0, wh1, a + 32) : dot32(wh0, wh1, a + 64);
  return i32x4.add(isum, i32x4.add(i32x4.mul(lo, sLo), i32x4.mul(hi, sHi)));
}

/** One super-block against one prepared Q8_K block: the f32x4 contribution (xd·d·isum − xd·dmin·msum). */
// @ts-ignore: decorator
@inline function blockDot(p: usize, xd: f32, bsums: usize, aq: usize): v128 {
  // As Q4_K: the scales widened once and splatted by constant shuffles; the four pairs written out.
  const s8 = i16x8.extend_low_i8x16_u(i64x2.splat(scalesK4(p + 4)));
  const sA = i32x4.extend_low_i16x8_u(s8), sB = i32x4.extend_high_i16x8_u(s8);
  const m0f = v128.load(MASK_0F), m10 = v128.load(MASK_10);
  const ord = ASC_FEATURE_RELAXED_SIMD ? v128.load(LANE_ORDER) : m0f;
  let h0 = v128.load(p + 16), h1 = v128.load(p + 32);
  if (ASC_FEATURE_RELAXED_SIMD) {
    h0 = i8x16.relaxed_swizzle(h0, ord);
    h1 = i8x16.relaxed_swizzle(h1, ord);
  }
  const q = p + 48, step = 64 * KACT_BYTES;
  let isum = pairDot(q, h0, h1, aq, ord, m0f, m10, i32x4.shuffle(sA, sA, 0, 0, 0, 0), i32x4.shuffle(sA, sA, 1, 1, 1, 1), i32x4.splat(0));
  h0 = i16x8.shr_u(h0, 2);
  h1 = i16x8.shr_u(h1, 2);
  isum = pairDot(q + 32, h0, h1, aq + step, ord, m0f, m10, i32x4.shuffle(sA, sA, 2, 2, 2, 2), i32x4.shuffle(sA, sA, 3, 3, 3, 3), isum);
  h0 = i16x8.shr_u(h0, 2);
  h1 = i16x8.shr_u(h1, 2);
  isum = pairDot(q + 64, h0, h1, aq + 2 * step, ord, m0f, m10, i32x4.shuffle(sB, sB, 0, 0, 0, 0), i32x4.shuffle(sB, sB, 1, 1, 1, 1), isum);
  h0 = i16x8.shr_u(h0, 2);
  h1 = i16x8.shr_u(h1, 2);
  isum = pairDot(q + 96, h0, h1, aq + 3 * step, ord, m0f, m10, i32x4.shuffle(sB, sB, 2, 2, 2, 2), i32x4.shuffle(sB, sB, 3, 3, 3, 3), isum);
  const dd = halfScale(load<u16>(p)) * xd;
  const dm = halfScale(load<u16>(p, 2)) * xd;
  return f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(dd)), f32x4.mul(f32x4.convert_i32x4_s(minsDot(minsK4(p + 4), bsums)), f32x4.splat(dm)));
}

// @ts-ignore: decorator
@inline function rowDot(wr: usize, ad: usize, nb: i32): f32 {
  const sums = ad + (<usize>nb << 2);
  const aq = ad + <usize>nb * 36;
  let s = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    s = f32x4.add(s, blockDot(wr + <usize>b * Q5_K_BLOCK_BYTES, load<f32>(ad + (<usize>b << 2)), sums + (<usize>b << 5), aq + (<usize>b << 8) * KACT_BYTES));
  }
  return hsum(s);
}

function rowQ5_K(wr: usize, ad: usize, nb: i32): f32 {
  return rowDot(wr, ad, nb);
}

/** rowDot for four activation rows: each sub-block is unpacked and widened once. */
function rowQ5_K_4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const sumsOff = <usize>nb << 2;
  const aqOff = <usize>nb * 36;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = wr + <usize>b * Q5_K_BLOCK_BYTES;
    let h0 = v128.load(p + 16), h1 = v128.load(p + 32);
    if (ASC_FEATURE_RELAXED_SIMD) {
      h0 = laneOrder(h0);
      h1 = laneOrder(h1);
    }
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    // As Q4_K's: the scales in one widened vector sliding two lanes a pair; the fifth bits as the single row takes them.
    const s8 = i16x8.extend_low_i8x16_u(i64x2.splat(scalesK4(p + 4)));
    let sA = i32x4.extend_low_i16x8_u(s8), sB = i32x4.extend_high_i16x8_u(s8);
    let q = p + 48;
    let a = aqOff + (<usize>b << 8) * KACT_BYTES;
    for (let k = 0; k < 4; k++) {
      let v0 = v128.load(q), v1 = v128.load(q, 16);
      if (ASC_FEATURE_RELAXED_SIMD) {
        v0 = laneOrder(v0);
        v1 = laneOrder(v1);
      }
      for (let half = 0; half < 2; half++) {
        const m10 = v128.load(MASK_10);
        const n0 = half == 0 ? v128.or(nibLo(v0), fifthLo(h0, m10)) : v128.or(nibHi(v0), fifthHi(h0, m10));
        const n1 = half == 0 ? v128.or(nibLo(v1), fifthLo(h1, m10)) : v128.or(nibHi(v1), fifthHi(h1, m10));
        const w0 = ASC_FEATURE_RELAXED_SIMD ? n0 : i16x8.extend_low_i8x16_u(n0);
        const w1 = ASC_FEATURE_RELAXED_SIMD ? n1 : i16x8.extend_high_i8x16_u(n0);
        const w2 = i16x8.extend_low_i8x16_u(n1), w3 = i16x8.extend_high_i8x16_u(n1); // unused in the relaxed build
        const scale = half == 0 ? i32x4.shuffle(sA, sA, 0, 0, 0, 0) : i32x4.shuffle(sA, sA, 1, 1, 1, 1);
        const ah = a + <usize>half * 32 * KACT_BYTES;
        i0 = i32x4.add(i0, i32x4.mul(unpackedUDot32(w0, w1, w2, w3, ad + ah), scale));
        pin(o, i0);
        i1 = i32x4.add(i1, i32x4.mul(unpackedUDot32(w0, w1, w2, w3, a1 + ah), scale));
        pin(o1, i1);
        i2 = i32x4.add(i2, i32x4.mul(unpackedUDot32(w0, w1, w2, w3, a2 + ah), scale));
        pin(o2, i2);
        i3 = i32x4.add(i3, i32x4.mul(unpackedUDot32(w0, w1, w2, w3, a3 + ah), scale));
      }
      sA = i32x4.shuffle(sA, sB, 2, 3, 4, 5);
      sB = i32x4.shuffle(sB, sB, 2, 3, 2, 3);
      h0 = i16x8.shr_u(h0, 2);
      h1 = i16x8.shr_u(h1, 2);
      q += 32;
      a += 64 * KACT_BYTES;
    }
    const d = halfScale(load<u16>(p)), dmin = halfScale(load<u16>(p, 2));
    const mins = minsK4(p + 4);
    const so = sumsOff + (<usize>b << 5), xo = <usize>b << 2;
    let xd: f32;
    xd = load<f32>(ad + xo);
    s0 = f32x4.add(s0, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i0), f32x4.splat(d * xd)), f32x4.mul(f32x4.convert_i32x4_s(minsDot(mins, ad + so)), f32x4.splat(dmin * xd))));
    pin(o, s0);
    xd = load<f32>(a1 + xo);
    s1 = f32x4.add(s1, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i1), f32x4.splat(d * xd)), f32x4.mul(f32x4.convert_i32x4_s(minsDot(mins, a1 + so)), f32x4.splat(dmin * xd))));
    pin(o1, s1);
    xd = load<f32>(a2 + xo);
    s2 = f32x4.add(s2, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i2), f32x4.splat(d * xd)), f32x4.mul(f32x4.convert_i32x4_s(minsDot(mins, a2 + so)), f32x4.splat(dmin * xd))));
    pin(o2, s2);
    xd = load<f32>(a3 + xo);
    s3 = f32x4.add(s3, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i3), f32x4.splat(d * xd)), f32x4.mul(f32x4.convert_i32x4_s(minsDot(mins, a3 + so)), f32x4.splat(dmin * xd))));
  }
  store<f32>(o, hsum(s0));
  store<f32>(o1, hsum(s1));
  store<f32>(o2, hsum(s2));
  store<f32>(o3, hsum(s3));
}

export function matmulQ5_K(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 8;
  matmulRows4(rowQ5_K, rowQ5_K_4, w, <usize>nb * Q5_K_BLOCK_BYTES, nb, row0, row1, act, actBytes, nAct, out, outStride);
}
