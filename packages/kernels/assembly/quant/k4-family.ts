// The product shared by Q4_K and Q5_K, whose super-blocks differ only in a fifth bit: f16 d, f16 dmin, 12 bytes of
// 6-bit scales and minimums (k-scales.ts), then (Q5_K only) qh[32], then qs[128]. Sub-blocks 2k and 2k+1 (k < 4) share
// qs[32k..32k+31]: 2k takes the low nibbles, 2k+1 the high ones, and in Q5_K bits 2k and 2k+1 of qh[l] as their fifth
// bits;  x = d·sc·q − dmin·m. Activations: Q8_K, or Q8_KP in the relaxed build (activation.ts), as ggml's
// vec_dot_q4_K_q8_K / vec_dot_q5_K_q8_K:  W·x = xd·(d·Σ_j sc_j Σ q·a − dmin·Σ_j m_j·bsum_j).
// Each type has a layout class L in its own file (q4_k.ts, q5_k.ts: blockBytes(), qsAt(), hasFifth()) whose methods
// inline to constants, so the generic functions compile to one dequantiser and product per type, no run-time branch.
import { halfScale, halfToF32 } from './half-scale';
import { hsum, MASK_0F, MASK_10, pin } from '../simd';
import { crossedSums, crossHi, crossLo, i16Pick, KACT_BYTES, pairOrderOffset, pairSums16, pairTerm, pairTermOfPairs, udot32 } from './int-dot';
import { FusedDot, PairedDot, pairedLowering } from './dot-lowering';
import { byteOf, minsDot, minsDotP, minsK4, scalesK4 } from './k-scales';
import { KRows } from './k-rows';
import { EightRows, matmulRows4, matmulRows8, NineRows, storeRowSums, TwoRows } from './row-tiles';

// The integer sum of a super-block (isum, four i32 lanes) is defined so that both builds compute it without reordering
// weight bytes: sub-block j's products are summed in two halves — values 0–7 and 16–23 (lanes 0 and 1 of runSums),
// 8–15 and 24–31 (lanes 2 and 3) — and pair k (sub-blocks 2k, 2k+1) adds
//   [sc_2k·half₀(2k), sc_2k·half₁(2k), sc_2k+1·half₀(2k+1), sc_2k+1·half₁(2k+1)]
// with one i32x4.dot_i16x8_s (pmaddwd: the scale multiply and the pairing in one instruction; every half fits i16).
// Exact integers, so every output has the same bits in both builds, whatever the batch. The relaxed build computes the
// same integers in one of two shapes, the type parameter P (dot-lowering.ts): one-step relaxed dots (udot32), or i16
// pair sums met by the scales in one pmaddwd (pairSums16, pairTermOfPairs) where V8 lowers the dot through vpmaddubsw.

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

/** Pair k's scales as i16 lanes [sc_2k ×4, sc_2k+1 ×4]: bytes of the eight i16 scales picked by one shuffle. */
const PAIR_SCALES = memory.data<u8>([
  0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7,
  8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11, 12, 13, 12, 13, 12, 13, 12, 13, 14, 15, 14, 15, 14, 15, 14, 15,
], 16);

/** The eight scales of the super-block at p as i16 lanes. */
// @ts-ignore: decorator
@inline function scales16(p: usize): v128 {
  return i16x8.extend_low_i8x16_u(i64x2.splat(scalesK4(p + 4)));
}

// @ts-ignore: decorator
@inline function pairScales(s16: v128, k: usize): v128 {
  return i16Pick(s16, v128.load(PAIR_SCALES + (k << 4)));
}

/**
 * One sub-block's 32 unsigned weights widened to i16 (w0: values 0–7, w1: 8–15, w2: 16–23, w3: 24–31; SIMD128) against
 * its ACT_Q8_K activations at a: lanes 0+1 sum values 0–7 and 16–23, lanes 2+3 values 8–15 and 24–31, as the relaxed
 * build's udot32 over the bytes in order does (its lane j sums bytes 4j..4j+3 of each 16).
 */
// @ts-ignore: decorator
@inline function wideRunSums(w0: v128, w1: v128, w2: v128, w3: v128, a: usize): v128 {
  const u = i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(a)), i32x4.dot_i16x8_s(w2, v128.load(a, 32)));
  const v = i32x4.add(i32x4.dot_i16x8_s(w1, v128.load(a, 16)), i32x4.dot_i16x8_s(w3, v128.load(a, 48)));
  return i32x4.add(i32x4.shuffle(u, v, 0, 1, 4, 5), i32x4.shuffle(u, v, 2, 3, 6, 7));
}

/**
 * One sub-block's 32 unsigned weights (n0: values 0–15, n1: 16–31, as bytes) against its activations at a, widened
 * to i16 (SIMD128: the relaxed build's pairRow takes the bytes as they are).
 */
// @ts-ignore: decorator
@inline function runSums(n0: v128, n1: v128, a: usize): v128 {
  return wideRunSums(i16x8.extend_low_i8x16_u(n0), i16x8.extend_high_i8x16_u(n0), i16x8.extend_low_i8x16_u(n1), i16x8.extend_high_i8x16_u(n1), a);
}

/** Sub-block 2k's weights (low nibbles of the 16 bytes v, plus the fifth bits of h for Q5_K). */
// @ts-ignore: decorator
@inline function lowWeights<L>(v: v128, h: v128, m0f: v128): v128 {
  const n = v128.and(v, m0f);
  return changetype<L>(0).hasFifth() ? v128.or(n, fifthLo(h, v128.load(MASK_10))) : n;
}

/** Sub-block 2k+1's weights (high nibbles, plus fifth bits). */
// @ts-ignore: decorator
@inline function highWeights<L>(v: v128, h: v128, m0f: v128): v128 {
  const n = v128.and(i16x8.shr_u(v, 4), m0f);
  return changetype<L>(0).hasFifth() ? v128.or(n, fifthHi(h, v128.load(MASK_10))) : n;
}

/** Pair k (the 32 bytes at q; fifth bits in bits 0 and 1 of h0, h1, shifted down by 2k) against its activations at a. */
// @ts-ignore: decorator
@inline function pairDot<L, P>(q: usize, h0: v128, h1: v128, a: usize, m0f: v128, sp: v128, isum: v128): v128 {
  const v0 = v128.load(q), v1 = v128.load(q, 16);
  if (ASC_FEATURE_RELAXED_SIMD) return pairRow<P>(isum, lowWeights<L>(v0, h0, m0f), lowWeights<L>(v1, h1, m0f), highWeights<L>(v0, h0, m0f), highWeights<L>(v1, h1, m0f), a, sp);
  const lo = runSums(lowWeights<L>(v0, h0, m0f), lowWeights<L>(v1, h1, m0f), a);
  const hi = runSums(highWeights<L>(v0, h0, m0f), highWeights<L>(v1, h1, m0f), a + 32 * KACT_BYTES);
  return i32x4.add(isum, pairTerm(lo, hi, sp));
}

/** The minimums against a block's activation sums at s: Q8_KP's sums of 32 (relaxed build) or Q8_K's of 16. */
// @ts-ignore: decorator
@inline function minsTerm(mins: u64, s: usize): v128 {
  return ASC_FEATURE_RELAXED_SIMD ? minsDotP(mins, s) : minsDot(mins, s);
}

/** One super-block against one prepared Q8_K block: the f32x4 contribution (xd·d·isum − xd·dmin·msum). */
// @ts-ignore: decorator
@inline function blockDot<L, P>(p: usize, xd: f32, bsums: usize, aq: usize): v128 {
  const layout = changetype<L>(0);
  const s16 = scales16(p);
  const m0f = v128.load(MASK_0F);
  let h0 = i32x4.splat(0), h1 = i32x4.splat(0);
  if (layout.hasFifth()) {
    h0 = v128.load(p + 16);
    h1 = v128.load(p + 32);
  }
  // The four pairs written out, not looped.
  const q = p + layout.qsAt(), step = 64 * KACT_BYTES;
  let isum = pairDot<L, P>(q, h0, h1, aq, m0f, pairScales(s16, 0), i32x4.splat(0));
  if (layout.hasFifth()) {
    h0 = i16x8.shr_u(h0, 2);
    h1 = i16x8.shr_u(h1, 2);
  }
  isum = pairDot<L, P>(q + 32, h0, h1, aq + step, m0f, pairScales(s16, 1), isum);
  if (layout.hasFifth()) {
    h0 = i16x8.shr_u(h0, 2);
    h1 = i16x8.shr_u(h1, 2);
  }
  isum = pairDot<L, P>(q + 64, h0, h1, aq + 2 * step, m0f, pairScales(s16, 2), isum);
  if (layout.hasFifth()) {
    h0 = i16x8.shr_u(h0, 2);
    h1 = i16x8.shr_u(h1, 2);
  }
  isum = pairDot<L, P>(q + 96, h0, h1, aq + 3 * step, m0f, pairScales(s16, 3), isum);
  const dd = halfScale(load<u16>(p)) * xd;
  const dm = halfScale(load<u16>(p, 2)) * xd;
  return f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(dd)), f32x4.mul(f32x4.convert_i32x4_s(minsTerm(minsK4(p + 4), bsums)), f32x4.splat(dm)));
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

/** A K4 type for the K-quants' rows (k-rows.ts): its super-block and its batch products. */
@final @unmanaged class K4Block<L, P> {
  // @ts-ignore: decorator
  @inline blockBytes(): usize { return changetype<L>(0).blockBytes(); }
  // @ts-ignore: decorator
  @inline blockDot(p: usize, xd: f32, bsums: usize, aq: usize): v128 { return blockDot<L, P>(p, xd, bsums, aq); }
  // @ts-ignore: decorator
  @inline row4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void { rowDotK4x4<L, P>(wr, ad, a1, a2, a3, nb, o, o1, o2, o3); }
  // @ts-ignore: decorator
  @inline row8(wr: usize, a0: usize, ab: usize, nb: i32, o0: usize, outStep: usize): void { rowDotK4x8<L, P, EightRows>(wr, a0, ab, nb, o0, outStep); }
  // @ts-ignore: decorator
  @inline row9(wr: usize, a0: usize, ab: usize, nb: i32, o0: usize, outStep: usize): void { rowDotK4x8<L, P, NineRows>(wr, a0, ab, nb, o0, outStep); }
  // @ts-ignore: decorator
  @inline row2(wr: usize, a0: usize, ab: usize, nb: i32, o0: usize, outStep: usize): void { rowDotK4x8<L, P, TwoRows>(wr, a0, ab, nb, o0, outStep); }
}

/**
 * rowDotK for four activation rows (KRows.row4): each pair of sub-blocks is unpacked (and widened, for
 * SIMD128) once for the four. The low half's sums wait in lo0..lo3 while the high half is computed, so that SIMD128's
 * widened weights of one half at a time and the accumulators fit the 16 vector registers.
 */
function rowDotK4x4<L, P>(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const layout = changetype<L>(0);
  const sumsOff = <usize>nb << 2;
  const aqOff = <usize>nb * 36;
  const m0f = v128.load(MASK_0F);
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = wr + <usize>b * layout.blockBytes();
    let h0 = i32x4.splat(0), h1 = i32x4.splat(0);
    if (layout.hasFifth()) {
      h0 = v128.load(p + 16);
      h1 = v128.load(p + 32);
    }
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    const s16 = scales16(p);
    let q = p + layout.qsAt();
    // The paired shape reads the rows' run-pair copy of q (activation.ts), the others q in order.
    let a = changetype<P>(0).paired() ? pairOrderOffset(nb) + (<usize>b << 8) : aqOff + (<usize>b << 8) * KACT_BYTES;
    for (let k: usize = 0; k < 4; k++) {
      const v0 = v128.load(q), v1 = v128.load(q, 16);
      const sp = pairScales(s16, k);
      if (ASC_FEATURE_RELAXED_SIMD && changetype<P>(0).paired()) {
        const l0 = lowWeights<L>(v0, h0, m0f), l1 = lowWeights<L>(v1, h1, m0f);
        const u0 = highWeights<L>(v0, h0, m0f), u1 = highWeights<L>(v1, h1, m0f);
        const c0 = crossLo(l0, u0), c1 = crossHi(l0, u0), c2 = crossLo(l1, u1), c3 = crossHi(l1, u1);
        i0 = crossedPairRow(i0, c0, c1, c2, c3, ad + a, sp);
        i1 = crossedPairRow(i1, c0, c1, c2, c3, a1 + a, sp);
        i2 = crossedPairRow(i2, c0, c1, c2, c3, a2 + a, sp);
        i3 = crossedPairRow(i3, c0, c1, c2, c3, a3 + a, sp);
      } else if (ASC_FEATURE_RELAXED_SIMD) {
        const l0 = lowWeights<L>(v0, h0, m0f), l1 = lowWeights<L>(v1, h1, m0f);
        const u0 = highWeights<L>(v0, h0, m0f), u1 = highWeights<L>(v1, h1, m0f);
        i0 = pairRow<P>(i0, l0, l1, u0, u1, ad + a, sp);
        i1 = pairRow<P>(i1, l0, l1, u0, u1, a1 + a, sp);
        i2 = pairRow<P>(i2, l0, l1, u0, u1, a2 + a, sp);
        i3 = pairRow<P>(i3, l0, l1, u0, u1, a3 + a, sp);
      } else {
        // SIMD128: one half widened at a time (the low half's sums wait in lo0..lo3).
        let n0 = lowWeights<L>(v0, h0, m0f), n1 = lowWeights<L>(v1, h1, m0f);
        let w0 = i16x8.extend_low_i8x16_u(n0), w1 = i16x8.extend_high_i8x16_u(n0);
        let w2 = i16x8.extend_low_i8x16_u(n1), w3 = i16x8.extend_high_i8x16_u(n1);
        const lo0 = wideRunSums(w0, w1, w2, w3, ad + a);
        pin(o, lo0);
        const lo1 = wideRunSums(w0, w1, w2, w3, a1 + a);
        pin(o1, lo1);
        const lo2 = wideRunSums(w0, w1, w2, w3, a2 + a);
        pin(o2, lo2);
        const lo3 = wideRunSums(w0, w1, w2, w3, a3 + a);
        n0 = highWeights<L>(v0, h0, m0f);
        n1 = highWeights<L>(v1, h1, m0f);
        w0 = i16x8.extend_low_i8x16_u(n0);
        w1 = i16x8.extend_high_i8x16_u(n0);
        w2 = i16x8.extend_low_i8x16_u(n1);
        w3 = i16x8.extend_high_i8x16_u(n1);
        const ah = a + 32 * KACT_BYTES;
        i0 = i32x4.add(i0, pairTerm(lo0, wideRunSums(w0, w1, w2, w3, ad + ah), sp));
        pin(o, i0);
        i1 = i32x4.add(i1, pairTerm(lo1, wideRunSums(w0, w1, w2, w3, a1 + ah), sp));
        pin(o1, i1);
        i2 = i32x4.add(i2, pairTerm(lo2, wideRunSums(w0, w1, w2, w3, a2 + ah), sp));
        pin(o2, i2);
        i3 = i32x4.add(i3, pairTerm(lo3, wideRunSums(w0, w1, w2, w3, a3 + ah), sp));
      }
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
let g4 = f32x4.splat(0), g5 = f32x4.splat(0), g6 = f32x4.splat(0), g7 = f32x4.splat(0), g8 = f32x4.splat(0);

/**
 * rowDotK for eight consecutive activation rows (KRows.row8), or nine or two (G: row-tiles.ts's NineRows, TwoRows;
 * KRows.row9, row2), relaxed build only: each pair of sub-blocks is unpacked once for all of them. Each output gets
 * rowDotK's integer sums and float operations in its order.
 */
function rowDotK4x8<L, P, G>(wr: usize, a0: usize, ab: usize, nb: i32, o0: usize, outStep: usize): void {
  const layout = changetype<L>(0);
  const n = changetype<G>(0).count();
  const sumsOff = <usize>nb << 2;
  const aqOff = <usize>nb * 36;
  const m0f = v128.load(MASK_0F);
  const a1 = a0 + ab, a2 = a1 + ab, a3 = a2 + ab, a4 = a3 + ab, a5 = a4 + ab, a6 = a5 + ab, a7 = a6 + ab, a8 = a7 + ab;
  g0 = f32x4.splat(0); g1 = f32x4.splat(0); g2 = f32x4.splat(0); g3 = f32x4.splat(0);
  g4 = f32x4.splat(0); g5 = f32x4.splat(0); g6 = f32x4.splat(0); g7 = f32x4.splat(0);
  if (n > 8) g8 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = wr + <usize>b * layout.blockBytes();
    let h0 = i32x4.splat(0), h1 = i32x4.splat(0);
    if (layout.hasFifth()) {
      h0 = v128.load(p + 16);
      h1 = v128.load(p + 32);
    }
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    let i4 = i32x4.splat(0), i5 = i32x4.splat(0), i6 = i32x4.splat(0), i7 = i32x4.splat(0), i8 = i32x4.splat(0);
    const s16 = scales16(p);
    let q = p + layout.qsAt();
    // The paired shape reads the rows' run-pair copy of q (activation.ts), the fused one q in order.
    let a = changetype<P>(0).paired() ? pairOrderOffset(nb) + (<usize>b << 8) : aqOff + (<usize>b << 8);
    for (let k: usize = 0; k < 4; k++) {
      const v0 = v128.load(q), v1 = v128.load(q, 16);
      const l0 = lowWeights<L>(v0, h0, m0f), l1 = lowWeights<L>(v1, h1, m0f);
      const u0 = highWeights<L>(v0, h0, m0f), u1 = highWeights<L>(v1, h1, m0f);
      const sp = pairScales(s16, k);
      if (changetype<P>(0).paired()) {
        // Crossed once for the eight rows: each row's sums then need no shuffle (int-dot.ts's crossedSums).
        const c0 = crossLo(l0, u0), c1 = crossHi(l0, u0), c2 = crossLo(l1, u1), c3 = crossHi(l1, u1);
        i0 = crossedPairRow(i0, c0, c1, c2, c3, a0 + a, sp);
        i1 = crossedPairRow(i1, c0, c1, c2, c3, a1 + a, sp);
        if (n > 2) {
          i2 = crossedPairRow(i2, c0, c1, c2, c3, a2 + a, sp);
          i3 = crossedPairRow(i3, c0, c1, c2, c3, a3 + a, sp);
          i4 = crossedPairRow(i4, c0, c1, c2, c3, a4 + a, sp);
          i5 = crossedPairRow(i5, c0, c1, c2, c3, a5 + a, sp);
          i6 = crossedPairRow(i6, c0, c1, c2, c3, a6 + a, sp);
          i7 = crossedPairRow(i7, c0, c1, c2, c3, a7 + a, sp);
        }
        if (n > 8) i8 = crossedPairRow(i8, c0, c1, c2, c3, a8 + a, sp);
      } else {
        i0 = pairRow<P>(i0, l0, l1, u0, u1, a0 + a, sp);
        i1 = pairRow<P>(i1, l0, l1, u0, u1, a1 + a, sp);
        if (n > 2) {
          i2 = pairRow<P>(i2, l0, l1, u0, u1, a2 + a, sp);
          i3 = pairRow<P>(i3, l0, l1, u0, u1, a3 + a, sp);
          i4 = pairRow<P>(i4, l0, l1, u0, u1, a4 + a, sp);
          i5 = pairRow<P>(i5, l0, l1, u0, u1, a5 + a, sp);
          i6 = pairRow<P>(i6, l0, l1, u0, u1, a6 + a, sp);
          i7 = pairRow<P>(i7, l0, l1, u0, u1, a7 + a, sp);
        }
        if (n > 8) i8 = pairRow<P>(i8, l0, l1, u0, u1, a8 + a, sp);
      }
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
    if (n > 2) {
      g2 = blockSum(g2, i2, d, dmin, mins, a2, so, xo);
      g3 = blockSum(g3, i3, d, dmin, mins, a3, so, xo);
      g4 = blockSum(g4, i4, d, dmin, mins, a4, so, xo);
      g5 = blockSum(g5, i5, d, dmin, mins, a5, so, xo);
      g6 = blockSum(g6, i6, d, dmin, mins, a6, so, xo);
      g7 = blockSum(g7, i7, d, dmin, mins, a7, so, xo);
    }
    if (n > 8) g8 = blockSum(g8, i8, d, dmin, mins, a8, so, xo);
  }
  storeRowSums(n, o0, outStep, g0, g1, g2, g3, g4, g5, g6, g7, g8);
}

/** isum plus one pair's term for the activation row at a (relaxed build: l0, l1 and u0, u1 the two sub-blocks' bytes). */
// @ts-ignore: decorator
@inline function pairRow<P>(isum: v128, l0: v128, l1: v128, u0: v128, u1: v128, a: usize, sp: v128): v128 {
  if (changetype<P>(0).paired()) return i32x4.add(isum, pairTermOfPairs(i16x8.add(pairSums16(l0, a), pairSums16(l1, a + 16)), i16x8.add(pairSums16(u0, a + 32), pairSums16(u1, a + 48)), sp));
  return i32x4.add(isum, pairTerm(udot32(l0, l1, a), udot32(u0, u1, a + 32), sp));
}

/**
 * isum plus one pair's term for the activation row whose run-pair-ordered q is at a, the pair's weights crossed
 * (c0, c1: the sub-blocks' values 0–15, c2, c3: 16–31): pairRow's integers without its shuffles per row.
 */
// @ts-ignore: decorator
@inline function crossedPairRow(isum: v128, c0: v128, c1: v128, c2: v128, c3: v128, a: usize, sp: v128): v128 {
  return i32x4.add(isum, i32x4.dot_i16x8_s(i16x8.add(crossedSums(c0, c1, a), crossedSums(c2, c3, a + 32)), sp));
}

/** s plus one super-block's contribution for the activation row at ad: rowDotK's float operations, in its order (x4, x8). */
// @ts-ignore: decorator
@inline function blockSum(s: v128, isum: v128, d: f32, dmin: f32, mins: u64, ad: usize, so: usize, xo: usize): v128 {
  const xd = load<f32>(ad + xo);
  return f32x4.add(s, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(d * xd)), f32x4.mul(f32x4.convert_i32x4_s(minsTerm(mins, ad + so)), f32x4.splat(dmin * xd))));
}

/** out[i·outStride + r] = W[r] · act[i] for weight rows [row0, row1) and activation rows [0, nAct) (row-tiles.ts). */
// @ts-ignore: decorator
@inline export function matmulK4<L>(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 8;
  const rowBytes = <usize>nb * changetype<L>(0).blockBytes();
  if (!ASC_FEATURE_RELAXED_SIMD) matmulRows4<KRows<K4Block<L, FusedDot>>>(w, rowBytes, nb, row0, row1, act, actBytes, nAct, out, outStride);
  else if (pairedLowering) matmulRows8<KRows<K4Block<L, PairedDot>>>(w, rowBytes, nb, row0, row1, act, actBytes, nAct, out, outStride);
  else matmulRows8<KRows<K4Block<L, FusedDot>>>(w, rowBytes, nb, row0, row1, act, actBytes, nAct, out, outStride);
}
