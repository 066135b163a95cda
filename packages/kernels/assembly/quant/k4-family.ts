// The product shared by Q4_K and Q5_K, whose super-blocks differ only in a fifth bit: f16 d, f16 dmin, 12 bytes of
// 6-bit scales and minimums (k-scales.ts), then (Q5_K only) qh[32], then qs[128]. Sub-blocks 2k and 2k+1 (k < 4) share
// qs[32k..32k+31]: 2k takes the low nibbles, 2k+1 the high ones, and in Q5_K bits 2k and 2k+1 of qh[l] as their fifth
// bits;  x = d·sc·q − dmin·m. Activations: Q8_K, or Q8_KS in the relaxed build (activation.ts), as ggml's
// vec_dot_q4_K_q8_K / vec_dot_q5_K_q8_K:  W·x = xd·(d·Σ_j sc_j Σ q·a − dmin·Σ_j m_j·bsum_j).
// Each type has a layout class L in its own file (q4_k.ts, q5_k.ts: blockBytes(), qsAt(), hasFifth()) whose methods
// inline to constants, so the generic functions compile to one dequantiser and product per type, no run-time branch.
import { halfScale, halfToF32 } from './half-scale';
import { hsum, LANE_ORDER, laneOrder, MASK_0F, MASK_10, pin } from '../simd';
import { dot32, KACT_BYTES, nibHi, nibLo, udot32, unpackedUDot32 } from './int-dot';
import { byteOf, minsDot, minsK4, scalesK4 } from './k-scales';
import { rowDotK } from './k-rows';

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
 * Sub-blocks 2k and 2k+1 (the 32 bytes at q; for Q5_K fifth bits in bits 0 and 1 of h0, h1, already shifted down by
 * 2k) against their 64 activations at a, times their scales (sLo, sHi: splatted), added to isum.
 */
// @ts-ignore: decorator
@inline function pairDot<L>(q: usize, h0: v128, h1: v128, a: usize, ord: v128, m0f: v128, m10: v128, sLo: v128, sHi: v128, isum: v128): v128 {
  const layout = changetype<L>(0);
  let v0 = v128.load(q);
  let v1 = v128.load(q, 16);
  if (ASC_FEATURE_RELAXED_SIMD) {
    v0 = i8x16.relaxed_swizzle(v0, ord);
    v1 = i8x16.relaxed_swizzle(v1, ord);
  }
  let wl0 = v128.and(v0, m0f), wl1 = v128.and(v1, m0f);
  let wh0 = v128.and(i16x8.shr_u(v0, 4), m0f), wh1 = v128.and(i16x8.shr_u(v1, 4), m0f);
  if (layout.hasFifth()) {
    wl0 = v128.or(wl0, fifthLo(h0, m10));
    wl1 = v128.or(wl1, fifthLo(h1, m10));
    wh0 = v128.or(wh0, fifthHi(h0, m10));
    wh1 = v128.or(wh1, fifthHi(h1, m10));
  }
  const lo = ASC_FEATURE_RELAXED_SIMD ? udot32(wl0, wl1, a) : dot32(wl0, wl1, a);
  const hi = ASC_FEATURE_RELAXED_SIMD ? udot32(wh0, wh1, a + 32) : dot32(wh0, wh1, a + 64);
  return i32x4.add(isum, i32x4.add(i32x4.mul(lo, sLo), i32x4.mul(hi, sHi)));
}

/** One super-block against one prepared Q8_K block: the f32x4 contribution (xd·d·isum − xd·dmin·msum). */
// @ts-ignore: decorator
@inline function blockDot<L>(p: usize, xd: f32, bsums: usize, aq: usize): v128 {
  const layout = changetype<L>(0);
  // The eight scales widened to i32 once; each sub-block's is splatted by a constant shuffle (one pshufd), where
  // shifting a scalar along and splatting took four instructions. The four pairs are written out, not looped.
  const s8 = i16x8.extend_low_i8x16_u(i64x2.splat(scalesK4(p + 4)));
  const sA = i32x4.extend_low_i16x8_u(s8), sB = i32x4.extend_high_i16x8_u(s8);
  // The masks once per super-block, not once per use (each use is a load from static data).
  const m0f = v128.load(MASK_0F), m10 = v128.load(MASK_10);
  const ord = ASC_FEATURE_RELAXED_SIMD ? v128.load(LANE_ORDER) : m0f;
  let h0 = i32x4.splat(0), h1 = i32x4.splat(0);
  if (layout.hasFifth()) {
    h0 = v128.load(p + 16);
    h1 = v128.load(p + 32);
    if (ASC_FEATURE_RELAXED_SIMD) {
      h0 = i8x16.relaxed_swizzle(h0, ord);
      h1 = i8x16.relaxed_swizzle(h1, ord);
    }
  }
  const q = p + layout.qsAt(), step = 64 * KACT_BYTES;
  let isum = pairDot<L>(q, h0, h1, aq, ord, m0f, m10, i32x4.shuffle(sA, sA, 0, 0, 0, 0), i32x4.shuffle(sA, sA, 1, 1, 1, 1), i32x4.splat(0));
  if (layout.hasFifth()) {
    h0 = i16x8.shr_u(h0, 2);
    h1 = i16x8.shr_u(h1, 2);
  }
  isum = pairDot<L>(q + 32, h0, h1, aq + step, ord, m0f, m10, i32x4.shuffle(sA, sA, 2, 2, 2, 2), i32x4.shuffle(sA, sA, 3, 3, 3, 3), isum);
  if (layout.hasFifth()) {
    h0 = i16x8.shr_u(h0, 2);
    h1 = i16x8.shr_u(h1, 2);
  }
  isum = pairDot<L>(q + 64, h0, h1, aq + 2 * step, ord, m0f, m10, i32x4.shuffle(sB, sB, 0, 0, 0, 0), i32x4.shuffle(sB, sB, 1, 1, 1, 1), isum);
  if (layout.hasFifth()) {
    h0 = i16x8.shr_u(h0, 2);
    h1 = i16x8.shr_u(h1, 2);
  }
  isum = pairDot<L>(q + 96, h0, h1, aq + 3 * step, ord, m0f, m10, i32x4.shuffle(sB, sB, 2, 2, 2, 2), i32x4.shuffle(sB, sB, 3, 3, 3, 3), isum);
  const dd = halfScale(load<u16>(p)) * xd;
  const dm = halfScale(load<u16>(p, 2)) * xd;
  return f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(dd)), f32x4.mul(f32x4.convert_i32x4_s(minsDot(minsK4(p + 4), bsums)), f32x4.splat(dm)));
}

/** Dequantises n values (a multiple of 256) of the type at src to f32 at dst: x = d·sc·q − dmin·m. */
// @ts-ignore: decorator
@inline export function dequantK4<L>(src: usize, dst: usize, n: i32): void {
  const layout = changetype<L>(0);
  const nb = n >> 8;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * layout.blockBytes();
    const d = halfToF32(load<u16>(p));
    const dmin = halfToF32(load<u16>(p, 2));
    const sc = scalesK4(p + 4), mn = minsK4(p + 4);
    const o = dst + (<usize>b << 10);
    for (let k = 0; k < 4; k++) {
      const d1 = d * <f32>byteOf(sc, 2 * k), m1 = dmin * <f32>byteOf(mn, 2 * k);
      const d2 = d * <f32>byteOf(sc, 2 * k + 1), m2 = dmin * <f32>byteOf(mn, 2 * k + 1);
      const q = p + layout.qsAt() + (<usize>k << 5);
      const y = o + (<usize>k << 8);
      for (let l = 0; l < 32; l++) {
        const v = <i32>load<u8>(q + l);
        let lo = v & 15, hi = v >> 4;
        if (layout.hasFifth()) {
          const hb = <i32>load<u8>(p + 16 + l);
          lo += ((hb >> (2 * k)) & 1) << 4;
          hi += ((hb >> (2 * k + 1)) & 1) << 4;
        }
        store<f32>(y + (<usize>l << 2), d1 * <f32>lo - m1);
        store<f32>(y + (<usize>(l + 32) << 2), d2 * <f32>hi - m2);
      }
    }
  }
}

/** A K4 type's super-block for rowDotK (k-rows.ts). */
@final @unmanaged class K4Block<L> {
  // @ts-ignore: decorator
  @inline blockBytes(): usize { return changetype<L>(0).blockBytes(); }
  // @ts-ignore: decorator
  @inline blockDot(p: usize, xd: f32, bsums: usize, aq: usize): v128 { return blockDot<L>(p, xd, bsums, aq); }
}

/** W[r]·act for one weight row at wr and one prepared activation row at ad of nb super-blocks. */
// @ts-ignore: decorator
@inline export function rowDotK4<L>(wr: usize, ad: usize, nb: i32): f32 {
  return rowDotK<K4Block<L>>(wr, ad, nb);
}

/** rowDotK4 for four activation rows (row-tiles.ts's RowDot4): each sub-block is unpacked (and widened) once. */
// @ts-ignore: decorator
@inline export function rowDotK4x4<L>(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const layout = changetype<L>(0);
  const sumsOff = <usize>nb << 2;
  const aqOff = <usize>nb * 36;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = wr + <usize>b * layout.blockBytes();
    let h0 = i32x4.splat(0), h1 = i32x4.splat(0);
    if (layout.hasFifth()) {
      h0 = v128.load(p + 16);
      h1 = v128.load(p + 32);
      if (ASC_FEATURE_RELAXED_SIMD) {
        h0 = laneOrder(h0);
        h1 = laneOrder(h1);
      }
    }
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    // The eight scales widened to i32 once; pair k takes lanes 0 and 1 of sA (constant shuffles), then sA slides on
    // by two lanes (where shifting a scalar along and splatting took four instructions a sub-block).
    const s8 = i16x8.extend_low_i8x16_u(i64x2.splat(scalesK4(p + 4)));
    let sA = i32x4.extend_low_i16x8_u(s8), sB = i32x4.extend_high_i16x8_u(s8);
    let q = p + layout.qsAt();
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
        // A branch on the half, not a select: with one, Binaryen computed both halves' fifth bits (Q5_K 7 % slower).
        let n0: v128, n1: v128;
        if (half == 0) {
          n0 = nibLo(v0);
          n1 = nibLo(v1);
          if (layout.hasFifth()) {
            const m10 = v128.load(MASK_10);
            n0 = v128.or(n0, fifthLo(h0, m10));
            n1 = v128.or(n1, fifthLo(h1, m10));
          }
        } else {
          n0 = nibHi(v0);
          n1 = nibHi(v1);
          if (layout.hasFifth()) {
            const m10 = v128.load(MASK_10);
            n0 = v128.or(n0, fifthHi(h0, m10));
            n1 = v128.or(n1, fifthHi(h1, m10));
          }
        }
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
      if (layout.hasFifth()) {
        h0 = i16x8.shr_u(h0, 2);
        h1 = i16x8.shr_u(h1, 2);
      }
      q += 32;
      a += 64 * KACT_BYTES;
    }
    const d = halfScale(load<u16>(p)), dmin = halfScale(load<u16>(p, 2));
    const mins = minsK4(p + 4);
    const so = sumsOff + (<usize>b << 5), xo = <usize>b << 2;
    s0 = blockSum(s0, i0, d, dmin, mins, ad, so, xo);
    pin(o, s0);
    s1 = blockSum(s1, i1, d, dmin, mins, a1, so, xo);
    pin(o1, s1);
    s2 = blockSum(s2, i2, d, dmin, mins, a2, so, xo);
    pin(o2, s2);
    s3 = blockSum(s3, i3, d, dmin, mins, a3, so, xo);
  }
  store<f32>(o, hsum(s0));
  store<f32>(o1, hsum(s1));
  store<f32>(o2, hsum(s2));
  store<f32>(o3, hsum(s3));
}


// The eight rows' float sums, in globals (one per instance, so per thread): kept in registers across the super-block
// loop they pushed the integer accumulators out of them.
let g0 = f32x4.splat(0), g1 = f32x4.splat(0), g2 = f32x4.splat(0), g3 = f32x4.splat(0);
let g4 = f32x4.splat(0), g5 = f32x4.splat(0), g6 = f32x4.splat(0), g7 = f32x4.splat(0);

/**
 * rowDotK4 for eight consecutive activation rows (row-tiles.ts's RowDot8), relaxed build only: each sub-block is
 * unpacked once for the eight, and the eight integer accumulators, the two weight vectors, the scale and the
 * activations of one row fit the 16 vector registers (the float sums, touched once a super-block, are what V8 spills).
 * Each output gets rowDotK4's float operations in its order.
 */
// @ts-ignore: decorator
@inline export function rowDotK4x8<L>(wr: usize, a0: usize, ab: usize, nb: i32, o0: usize, outStep: usize): void {
  const layout = changetype<L>(0);
  const sumsOff = <usize>nb << 2;
  const aqOff = <usize>nb * 36;
  const a1 = a0 + ab, a2 = a1 + ab, a3 = a2 + ab, a4 = a3 + ab, a5 = a4 + ab, a6 = a5 + ab, a7 = a6 + ab;
  g0 = f32x4.splat(0); g1 = f32x4.splat(0); g2 = f32x4.splat(0); g3 = f32x4.splat(0);
  g4 = f32x4.splat(0); g5 = f32x4.splat(0); g6 = f32x4.splat(0); g7 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = wr + <usize>b * layout.blockBytes();
    let h0 = i32x4.splat(0), h1 = i32x4.splat(0);
    if (layout.hasFifth()) {
      h0 = laneOrder(v128.load(p + 16));
      h1 = laneOrder(v128.load(p + 32));
    }
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    let i4 = i32x4.splat(0), i5 = i32x4.splat(0), i6 = i32x4.splat(0), i7 = i32x4.splat(0);
    const s8 = i16x8.extend_low_i8x16_u(i64x2.splat(scalesK4(p + 4)));
    let sA = i32x4.extend_low_i16x8_u(s8), sB = i32x4.extend_high_i16x8_u(s8);
    let q = p + layout.qsAt();
    let a = aqOff + (<usize>b << 8);
    // Pair k: sub-block 2k from the low nibbles, 2k+1 from the high ones, written out (a loop over the two halves
    // put a stack check and a branch on every half).
    for (let k = 0; k < 4; k++) {
      const v0 = laneOrder(v128.load(q)), v1 = laneOrder(v128.load(q, 16));
      let n0 = nibLo(v0), n1 = nibLo(v1);
      if (layout.hasFifth()) {
        const m10 = v128.load(MASK_10);
        n0 = v128.or(n0, fifthLo(h0, m10));
        n1 = v128.or(n1, fifthLo(h1, m10));
      }
      let scale = i32x4.shuffle(sA, sA, 0, 0, 0, 0);
      i0 = scaledDot(i0, n0, n1, a0 + a, scale);
      i1 = scaledDot(i1, n0, n1, a1 + a, scale);
      i2 = scaledDot(i2, n0, n1, a2 + a, scale);
      i3 = scaledDot(i3, n0, n1, a3 + a, scale);
      i4 = scaledDot(i4, n0, n1, a4 + a, scale);
      i5 = scaledDot(i5, n0, n1, a5 + a, scale);
      i6 = scaledDot(i6, n0, n1, a6 + a, scale);
      i7 = scaledDot(i7, n0, n1, a7 + a, scale);
      n0 = nibHi(v0);
      n1 = nibHi(v1);
      if (layout.hasFifth()) {
        const m10 = v128.load(MASK_10);
        n0 = v128.or(n0, fifthHi(h0, m10));
        n1 = v128.or(n1, fifthHi(h1, m10));
      }
      scale = i32x4.shuffle(sA, sA, 1, 1, 1, 1);
      const ah = a + 32;
      i0 = scaledDot(i0, n0, n1, a0 + ah, scale);
      i1 = scaledDot(i1, n0, n1, a1 + ah, scale);
      i2 = scaledDot(i2, n0, n1, a2 + ah, scale);
      i3 = scaledDot(i3, n0, n1, a3 + ah, scale);
      i4 = scaledDot(i4, n0, n1, a4 + ah, scale);
      i5 = scaledDot(i5, n0, n1, a5 + ah, scale);
      i6 = scaledDot(i6, n0, n1, a6 + ah, scale);
      i7 = scaledDot(i7, n0, n1, a7 + ah, scale);
      sA = i32x4.shuffle(sA, sB, 2, 3, 4, 5);
      sB = i32x4.shuffle(sB, sB, 2, 3, 2, 3);
      if (layout.hasFifth()) {
        h0 = i16x8.shr_u(h0, 2);
        h1 = i16x8.shr_u(h1, 2);
      }
      q += 32;
      a += 64;
    }
    const d = halfScale(load<u16>(p)), dmin = halfScale(load<u16>(p, 2));
    const mins = minsK4(p + 4);
    const so = sumsOff + (<usize>b << 5), xo = <usize>b << 2;
    g0 = blockSum(g0, i0, d, dmin, mins, a0, so, xo);
    g1 = blockSum(g1, i1, d, dmin, mins, a1, so, xo);
    g2 = blockSum(g2, i2, d, dmin, mins, a2, so, xo);
    g3 = blockSum(g3, i3, d, dmin, mins, a3, so, xo);
    g4 = blockSum(g4, i4, d, dmin, mins, a4, so, xo);
    g5 = blockSum(g5, i5, d, dmin, mins, a5, so, xo);
    g6 = blockSum(g6, i6, d, dmin, mins, a6, so, xo);
    g7 = blockSum(g7, i7, d, dmin, mins, a7, so, xo);
  }
  store<f32>(o0, hsum(g0));
  store<f32>(o0 + outStep, hsum(g1));
  store<f32>(o0 + 2 * outStep, hsum(g2));
  store<f32>(o0 + 3 * outStep, hsum(g3));
  store<f32>(o0 + 4 * outStep, hsum(g4));
  store<f32>(o0 + 5 * outStep, hsum(g5));
  store<f32>(o0 + 6 * outStep, hsum(g6));
  store<f32>(o0 + 7 * outStep, hsum(g7));
}

/** isum + scale · (the 32 unsigned weights n0, n1 · the 32 int8 activations at a): relaxed build only. */
// @ts-ignore: decorator
@inline function scaledDot(isum: v128, n0: v128, n1: v128, a: usize, scale: v128): v128 {
  return i32x4.add(isum, i32x4.mul(udot32(n0, n1, a), scale));
}

/** s plus one super-block's contribution for the activation row at ad: rowDotK4's float operations, in its order (x4, x8). */
// @ts-ignore: decorator
@inline function blockSum(s: v128, isum: v128, d: f32, dmin: f32, mins: u64, ad: usize, so: usize, xo: usize): v128 {
  const xd = load<f32>(ad + xo);
  return f32x4.add(s, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(d * xd)), f32x4.mul(f32x4.convert_i32x4_s(minsDot(mins, ad + so)), f32x4.splat(dmin * xd))));
}
