// Q4_K (ggml block_q4_K): super-blocks of 256 values, 144 bytes: f16 d, f16 dmin, u8 scales[12], u8 qs[128].
// Eight sub-blocks of 32, each with a 6-bit scale sc and minimum m (k-scales.ts). Sub-blocks 2k and 2k+1 share
// qs[32k..32k+31]: 2k takes the low nibbles, 2k+1 the high ones;  x = d·sc·q − dmin·m.
// Activations: Q8_K, or Q8_KS in the relaxed build (activation.ts), as ggml's vec_dot_q4_K_q8_K:
//   W·x = xd·(d·Σ_j sc_j Σ q·a − dmin·Σ_j m_j·bsum_j).
import { halfScale, halfToF32 } from './half-scale';
import { matmulRows4 } from './row-tiles';
import { hsum, LANE_ORDER, laneOrder, MASK_0F, pin } from '../simd';
import { dot32, KACT_BYTES, nibHi, nibLo, udot32, unpackedUDot32 } from './int-dot';
import { byteOf, minsDot, minsK4, scalesK4 } from './k-scales';

export const Q4_K_BLOCK_BYTES: usize = 144;

export function dequantQ4_K(src: usize, dst: usize, n: i32): void {
  const nb = n >> 8;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q4_K_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p));
    const dmin = halfToF32(load<u16>(p, 2));
    const sc = scalesK4(p + 4), mn = minsK4(p + 4);
    const o = dst + (<usize>b << 10);
    for (let k = 0; k < 4; k++) {
      const d1 = d * <f32>byteOf(sc, 2 * k), m1 = dmin * <f32>byteOf(mn, 2 * k);
      const d2 = d * <f32>byteOf(sc, 2 * k + 1), m2 = dmin * <f32>byteOf(mn, 2 * k + 1);
      const q = p + 16 + (<usize>k << 5);
      const y = o + (<usize>k << 8);
      for (let l = 0; l < 32; l++) {
        const v = <i32>load<u8>(q + l);
        store<f32>(y + (<usize>l << 2), d1 * <f32>(v & 15) - m1);
        store<f32>(y + (<usize>(l + 32) << 2), d2 * <f32>(v >> 4) - m2);
      }
    }
  }
}

/**
 * Sub-blocks 2k and 2k+1 (the 32 bytes at q: low nibbles, then high) against their 64 activations at a, times their
 * scales (sLo, sHi: splatted), added to isum.
 */
// @ts-ignore: decorator
@inline function pairDot(q: usize, a: usize, ord: v128, m0f: v128, sLo: v128, sHi: v128, isum: v128): v128 {
  let v0 = v128.load(q);
  let v1 = v128.load(q, 16);
  if (ASC_FEATURE_RELAXED_SIMD) {
    v0 = i8x16.relaxed_swizzle(v0, ord);
    v1 = i8x16.relaxed_swizzle(v1, ord);
  }
  const l0 = v128.and(v0, m0f), l1 = v128.and(v1, m0f);
  const h0 = v128.and(i16x8.shr_u(v0, 4), m0f), h1 = v128.and(i16x8.shr_u(v1, 4), m0f);
  const lo = ASC_FEATURE_RELAXED_SIMD ? udot32(l0, l1, a) : dot32(l0, l1, a);
  const hi = ASC_FEATURE_RELAXED_SIMD ? udot32(h0, h1, a + 32) : dot32(h0, h1, a + 64);
  return i32x4.add(isum, i32x4.add(i32x4.mul(lo, sLo), i32x4.mul(hi, sHi)));
}

/** One super-block against one prepared Q8_K block: the f32x4 contribution (xd·d·isum − xd·dmin·msum). */
// @ts-ignore: decorator
@inline function blockDot(p: usize, xd: f32, bsums: usize, aq: usize): v128 {
  // The eight scales widened to i32 once; each sub-block's is splatted by a constant shuffle (one pshufd), where
  // shifting a scalar along and splatting took four instructions. The four pairs are written out, not looped.
  const s8 = i16x8.extend_low_i8x16_u(i64x2.splat(scalesK4(p + 4)));
  const sA = i32x4.extend_low_i16x8_u(s8), sB = i32x4.extend_high_i16x8_u(s8);
  // The masks once per super-block, not once per use (each use is a load from static data).
  const m0f = v128.load(MASK_0F);
  const ord = ASC_FEATURE_RELAXED_SIMD ? v128.load(LANE_ORDER) : m0f;
  const q = p + 16, step = 64 * KACT_BYTES;
  let isum = pairDot(q, aq, ord, m0f, i32x4.shuffle(sA, sA, 0, 0, 0, 0), i32x4.shuffle(sA, sA, 1, 1, 1, 1), i32x4.splat(0));
  isum = pairDot(q + 32, aq + step, ord, m0f, i32x4.shuffle(sA, sA, 2, 2, 2, 2), i32x4.shuffle(sA, sA, 3, 3, 3, 3), isum);
  isum = pairDot(q + 64, aq + 2 * step, ord, m0f, i32x4.shuffle(sB, sB, 0, 0, 0, 0), i32x4.shuffle(sB, sB, 1, 1, 1, 1), isum);
  isum = pairDot(q + 96, aq + 3 * step, ord, m0f, i32x4.shuffle(sB, sB, 2, 2, 2, 2), i32x4.shuffle(sB, sB, 3, 3, 3, 3), isum);
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
    s = f32x4.add(s, blockDot(wr + <usize>b * Q4_K_BLOCK_BYTES, load<f32>(ad + (<usize>b << 2)), sums + (<usize>b << 5), aq + (<usize>b << 8) * KACT_BYTES));
  }
  return hsum(s);
}

function rowQ4_K(wr: usize, ad: usize, nb: i32): f32 {
  return rowDot(wr, ad, nb);
}

/** rowDot for four activation rows: each sub-block is unpacked and widened once. */
function rowQ4_K_4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const sumsOff = <usize>nb << 2;
  const aqOff = <usize>nb * 36;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = wr + <usize>b * Q4_K_BLOCK_BYTES;
    const sc = scalesK4(p + 4);
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    // The eight scales widened to i32 once; pair k takes lanes 0 and 1 of sA (constant shuffles), then sA slides on
    // by two lanes (where shifting a scalar along and splatting took four instructions a sub-block).
    const s8 = i16x8.extend_low_i8x16_u(i64x2.splat(scalesK4(p + 4)));
    let sA = i32x4.extend_low_i16x8_u(s8), sB = i32x4.extend_high_i16x8_u(s8);
    let q = p + 16;
    let a = aqOff + (<usize>b << 8) * KACT_BYTES;
    // Pair k: sub-block 2k from the low nibbles of qs[32k..32k+31], 2k+1 from the high ones; each is unpacked (and
    // widened, for SIMD128) once for the four rows.
    for (let k = 0; k < 4; k++) {
      let v0 = v128.load(q), v1 = v128.load(q, 16);
      if (ASC_FEATURE_RELAXED_SIMD) {
        v0 = laneOrder(v0);
        v1 = laneOrder(v1);
      }
      for (let half = 0; half < 2; half++) {
        const n0 = half == 0 ? nibLo(v0) : nibHi(v0);
        const n1 = half == 0 ? nibLo(v1) : nibHi(v1);
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
      q += 32;
      a += 64 * KACT_BYTES;
    }
    const d = halfScale(load<u16>(p)), dmin = halfScale(load<u16>(p, 2));
    const mins = minsK4(p + 4);
    const so = sumsOff + (<usize>b << 5), xo = <usize>b << 2;
    let xd = load<f32>(ad + xo);
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

export function matmulQ4_K(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 8;
  matmulRows4(rowQ4_K, rowQ4_K_4, w, <usize>nb * Q4_K_BLOCK_BYTES, nb, row0, row1, act, actBytes, nAct, out, outStride);
}
