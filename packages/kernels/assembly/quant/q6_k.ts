// Q6_K (ggml block_q6_K): super-blocks of 256 values, 210 bytes: u8 ql[128], u8 qh[64], i8 scales[16], f16 d.
// Sixteen sub-blocks of 16 with an 8-bit signed scale; 6-bit values q = (4 low bits from ql) | (2 high bits from qh) << 4,
// x = d·sc·(q − 32). Per half h (128 values; ql += 64h, qh += 32h, sc += 8h), l < 32:
//   x[l]      from ql[l] & 15,     qh[l] bits 0–1, scale sc[l/16]
//   x[l + 32] from ql[l + 32] & 15, qh[l] bits 2–3, scale sc[2 + l/16]
//   x[l + 64] from ql[l] >> 4,     qh[l] bits 4–5, scale sc[4 + l/16]
//   x[l + 96] from ql[l + 32] >> 4, qh[l] bits 6–7, scale sc[6 + l/16]
// Activations: Q8_K, or Q8_KS in the relaxed build (activation.ts). The −32 is applied once per block through the block sums: Σ sc·(q−32)·a = Σ sc·q·a − 32·Σ sc·bsum.
import { halfScale, halfToF32 } from './half-scale';
import { EightRows, matmulRows4, matmulRows8, NineRows, storeRowSums, TwoRows } from './row-tiles';
import { KRows } from './k-rows';
import { hsum, MASK_0F, MASK_30, pin } from '../simd';
import { crossedSums, crossHi, crossLo, i16Pick, KACT_BYTES, pairOrderOffset, pairSums16, pairTerm, pairTermOfPairs, runSums16, udot16 } from './int-dot';
import { FusedDot, PairedDot, pairedLowering } from './dot-lowering';

export const Q6_K_BLOCK_BYTES: usize = 210;

export function dequantQ6_K(src: usize, dst: usize, n: i32): void {
  const nb = n >> 8;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q6_K_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p, 208));
    for (let h = 0; h < 2; h++) {
      const ql = p + (<usize>h << 6), qh = p + 128 + (<usize>h << 5), sc = p + 192 + (<usize>h << 3);
      const y = dst + (<usize>b << 10) + (<usize>h << 9);
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const lo = <i32>load<u8>(ql + l), hi = <i32>load<u8>(ql + l + 32), hb = <i32>load<u8>(qh + l);
        const q1 = ((lo & 15) | ((hb & 3) << 4)) - 32;
        const q2 = ((hi & 15) | (((hb >> 2) & 3) << 4)) - 32;
        const q3 = ((lo >> 4) | (((hb >> 4) & 3) << 4)) - 32;
        const q4 = ((hi >> 4) | (((hb >> 6) & 3) << 4)) - 32;
        store<f32>(y + (<usize>l << 2), d * <f32>load<i8>(sc + is) * <f32>q1);
        store<f32>(y + (<usize>(l + 32) << 2), d * <f32>load<i8>(sc + is + 2) * <f32>q2);
        store<f32>(y + (<usize>(l + 64) << 2), d * <f32>load<i8>(sc + is + 4) * <f32>q3);
        store<f32>(y + (<usize>(l + 96) << 2), d * <f32>load<i8>(sc + is + 6) * <f32>q4);
      }
    }
  }
}

// The integer sum of a super-block is defined so that neither build reorders weight bytes (as k4-family.ts's): each
// run of 16 is summed in two halves — values 0–7 (lanes 0+1 of runSums16) and 8–15 (lanes 2+3) — and two runs meet
// their two scales in one i32x4.dot_i16x8_s (int-dot.ts's pairTerm; a half of 8 products of 6-bit weights fits i16).
// The relaxed build has two shapes of the same integers, the type parameter P (dot-lowering.ts, as k4-family.ts).

/**
 * Scale pairs: group g of a half takes scales g, g+2 (runs 1, 2) and g+4, g+6 (runs 3, 4) of the half's eight, as i16
 * lanes [sc ×4, sc' ×4] picked by one shuffle from the eight scales widened to i16.
 */
const RUN_SCALES = memory.data<u8>([
  0, 1, 0, 1, 0, 1, 0, 1, 4, 5, 4, 5, 4, 5, 4, 5, 8, 9, 8, 9, 8, 9, 8, 9, 12, 13, 12, 13, 12, 13, 12, 13,
  2, 3, 2, 3, 2, 3, 2, 3, 6, 7, 6, 7, 6, 7, 6, 7, 10, 11, 10, 11, 10, 11, 10, 11, 14, 15, 14, 15, 14, 15, 14, 15,
  // The same again for the second half: at other addresses, V8 does not keep the first half's four masks in
  // registers across the super-block (they pushed the float sum and the scales out to the stack). The batch loops,
  // which loop over the halves, take the first copy.
  0, 1, 0, 1, 0, 1, 0, 1, 4, 5, 4, 5, 4, 5, 4, 5, 8, 9, 8, 9, 8, 9, 8, 9, 12, 13, 12, 13, 12, 13, 12, 13,
  2, 3, 2, 3, 2, 3, 2, 3, 6, 7, 6, 7, 6, 7, 6, 7, 10, 11, 10, 11, 10, 11, 10, 11, 14, 15, 14, 15, 14, 15, 14, 15,
], 16);

/** The scales of runs 1, 2 (m = 0) or 3, 4 (m = 1) of group g of half h, from the half's eight scales as i16 (s16). */
// @ts-ignore: decorator
@inline function runScales(s16: v128, h: usize, g: usize, m: usize): v128 {
  return i16Pick(s16, v128.load(RUN_SCALES + (h << 6) + (g << 5) + (m << 4)));
}

/** The four runs of 16 weights of group g of half h (see the file's head), as unsigned bytes in order. */
// @ts-ignore: decorator
@inline function run1(l0: v128, hb: v128, m0f: v128, m30: v128): v128 { return v128.or(v128.and(l0, m0f), v128.and(i16x8.shl(hb, 4), m30)); }
// @ts-ignore: decorator
@inline function run2(l1: v128, hb: v128, m0f: v128, m30: v128): v128 { return v128.or(v128.and(l1, m0f), v128.and(i16x8.shl(hb, 2), m30)); }
// @ts-ignore: decorator
@inline function run3(l0: v128, hb: v128, m0f: v128, m30: v128): v128 { return v128.or(v128.and(i16x8.shr_u(l0, 4), m0f), v128.and(hb, m30)); }
// @ts-ignore: decorator
@inline function run4(l1: v128, hb: v128, m0f: v128, m30: v128): v128 { return v128.or(v128.and(i16x8.shr_u(l1, 4), m0f), v128.and(i16x8.shr_u(hb, 2), m30)); }

/** One group of 64 values (16 bytes of ql at ql and ql + 32, 16 of qh at qh) against its activations at a. */
// @ts-ignore: decorator
@inline function groupDot<P>(ql: usize, qh: usize, a: usize, m0f: v128, m30: v128, sp12: v128, sp34: v128, isum: v128): v128 {
  const l0 = v128.load(ql), l1 = v128.load(ql, 32), hb = v128.load(qh);
  if (ASC_FEATURE_RELAXED_SIMD) {
    const i12 = runPairRow<P>(isum, run1(l0, hb, m0f, m30), run2(l1, hb, m0f, m30), a, a + 32, sp12);
    return runPairRow<P>(i12, run3(l0, hb, m0f, m30), run4(l1, hb, m0f, m30), a + 64, a + 96, sp34);
  }
  const d12 = pairTerm(runSums16(run1(l0, hb, m0f, m30), a), runSums16(run2(l1, hb, m0f, m30), a + 32 * KACT_BYTES), sp12);
  const d34 = pairTerm(runSums16(run3(l0, hb, m0f, m30), a + 64 * KACT_BYTES), runSums16(run4(l1, hb, m0f, m30), a + 96 * KACT_BYTES), sp34);
  return i32x4.add(isum, i32x4.add(d12, d34));
}

/** One super-block against one prepared Q8_K block: its f32x4 contribution. */
// @ts-ignore: decorator
@inline function blockDot<P>(p: usize, xd: f32, bsums: usize, aq: usize): v128 {
  // The masks once per super-block, not once per use (each use is a load from static data).
  const m30 = v128.load(MASK_30);
  const m0f = v128.load(MASK_0F);
  // The 16 scales as i16, each 8 widened by its load (vpmovsxbw from memory).
  const lo = v128.load8x8_s(p, 192), hi = v128.load8x8_s(p, 200);
  const half = 128 * KACT_BYTES, run = 16 * KACT_BYTES;
  // The four groups written out, not looped.
  let isum = groupDot<P>(p, p + 128, aq, m0f, m30, runScales(lo, 0, 0, 0), runScales(lo, 0, 0, 1), i32x4.splat(0));
  isum = groupDot<P>(p + 16, p + 144, aq + run, m0f, m30, runScales(lo, 0, 1, 0), runScales(lo, 0, 1, 1), isum);
  isum = groupDot<P>(p + 64, p + 160, aq + half, m0f, m30, runScales(hi, 1, 0, 0), runScales(hi, 1, 0, 1), isum);
  isum = groupDot<P>(p + 80, p + 176, aq + half + run, m0f, m30, runScales(hi, 1, 1, 0), runScales(hi, 1, 1, 1), isum);
  // Σ sc·bsum: the 16 scales (as i16) against the 16 block sums.
  const corr = i32x4.add(i32x4.dot_i16x8_s(lo, v128.load(bsums)), i32x4.dot_i16x8_s(hi, v128.load(bsums, 16)));
  isum = i32x4.sub(isum, i32x4.shl(corr, 5));
  return f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(halfScale(load<u16>(p, 208)) * xd));
}

/** Q6_K for the K-quants' rows (k-rows.ts): its super-block and its batch products. */
@final @unmanaged class Q6KBlock<P> {
  // @ts-ignore: decorator
  @inline blockBytes(): usize { return Q6_K_BLOCK_BYTES; }
  // @ts-ignore: decorator
  @inline blockDot(p: usize, xd: f32, bsums: usize, aq: usize): v128 { return blockDot<P>(p, xd, bsums, aq); }
  // @ts-ignore: decorator
  @inline row4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void { rowQ6_K_4<P>(wr, ad, a1, a2, a3, nb, o, o1, o2, o3); }
  // @ts-ignore: decorator
  @inline row8(wr: usize, a0: usize, ab: usize, nb: i32, o0: usize, outStep: usize): void { rowQ6_K_8<P, EightRows>(wr, a0, ab, nb, o0, outStep); }
  // @ts-ignore: decorator
  @inline row9(wr: usize, a0: usize, ab: usize, nb: i32, o0: usize, outStep: usize): void { rowQ6_K_8<P, NineRows>(wr, a0, ab, nb, o0, outStep); }
  // @ts-ignore: decorator
  @inline row2(wr: usize, a0: usize, ab: usize, nb: i32, o0: usize, outStep: usize): void { rowQ6_K_8<P, TwoRows>(wr, a0, ab, nb, o0, outStep); }
}

/** Σ sc·bsum for the 16 scales s8 and the 16 block sums at bs. */
// @ts-ignore: decorator
@inline function corr(s8: v128, bs: usize): v128 {
  return i32x4.add(
    i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(s8), v128.load(bs)),
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(s8), v128.load(bs, 16)),
  );
}

/** rowDotK for four activation rows: each run of 16 values is unpacked (and widened) once. */
function rowQ6_K_4<P>(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const m30 = v128.load(MASK_30), m0f = v128.load(MASK_0F);
  const sumsOff = <usize>nb << 2;
  const aqOff = <usize>nb * 36;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = wr + <usize>b * Q6_K_BLOCK_BYTES;
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    let u0 = i32x4.splat(0), u1 = i32x4.splat(0), u2 = i32x4.splat(0), u3 = i32x4.splat(0); // SIMD128 only
    let v0 = i32x4.splat(0), v1 = i32x4.splat(0), v2 = i32x4.splat(0), v3 = i32x4.splat(0);
    const aq = aqOff + (<usize>b << 8) * KACT_BYTES;
    const ap = pairOrderOffset(nb) + (<usize>b << 8);
    const s8 = v128.load(p + 192);
    for (let h: usize = 0; h < 2; h++) {
      const s16 = h == 0 ? i16x8.extend_low_i8x16_s(s8) : i16x8.extend_high_i8x16_s(s8);
      for (let g: usize = 0; g < 2; g++) {
        const ql = p + (h << 6) + (g << 4), qh = p + 128 + (h << 5) + (g << 4);
        const l0 = v128.load(ql), l1 = v128.load(ql, 32), hb = v128.load(qh);
        const ag = aq + ((h << 7) + (g << 4)) * KACT_BYTES;
        for (let m: usize = 0; m < 2; m++) {
          // Runs 1, 2 (m = 0) or 3, 4 (m = 1).
          const x = m == 0 ? run1(l0, hb, m0f, m30) : run3(l0, hb, m0f, m30);
          const y = m == 0 ? run2(l1, hb, m0f, m30) : run4(l1, hb, m0f, m30);
          const sp = runScales(s16, 0, g, m);
          const ax = ag + (m << 6) * KACT_BYTES, ay = ax + 32 * KACT_BYTES;
          if (ASC_FEATURE_RELAXED_SIMD && changetype<P>(0).paired()) {
            // The run-pair copy of the rows' q (activation.ts): 64 values a chunk, runs at 16g and 16g + 32.
            const cx = crossLo(x, y), cy = crossHi(x, y), ac = ap + (((h << 1) + m) << 6) + (g << 5);
            i0 = crossedRunPairRow(i0, cx, cy, ad + ac, sp);
            i1 = crossedRunPairRow(i1, cx, cy, a1 + ac, sp);
            i2 = crossedRunPairRow(i2, cx, cy, a2 + ac, sp);
            i3 = crossedRunPairRow(i3, cx, cy, a3 + ac, sp);
          } else if (ASC_FEATURE_RELAXED_SIMD) {
            i0 = runPairRow<P>(i0, x, y, ad + ax, ad + ay, sp);
            i1 = runPairRow<P>(i1, x, y, a1 + ax, a1 + ay, sp);
            i2 = runPairRow<P>(i2, x, y, a2 + ax, a2 + ay, sp);
            i3 = runPairRow<P>(i3, x, y, a3 + ax, a3 + ay, sp);
          } else {
            // SIMD128: each run's four pairwise sums per half scaled by one pmaddwd into u (runs 1, 3) or v (runs 2,
            // 4); the halves are paired once a super-block (below) — the same integers as pairTerm's. No pin stores
            // here: with them these loops took 20 % more CPU time.
            const sx = i16x8.splat(<i16>load<i8>(p + 192 + (h << 3) + g + (m << 2)));
            const sy = i16x8.splat(<i16>load<i8>(p + 194 + (h << 3) + g + (m << 2)));
            let w0 = i16x8.extend_low_i8x16_u(x), w1 = i16x8.extend_high_i8x16_u(x);
            u0 = i32x4.add(u0, scaledHalves(w0, w1, ad + ax, sx));
            u1 = i32x4.add(u1, scaledHalves(w0, w1, a1 + ax, sx));
            u2 = i32x4.add(u2, scaledHalves(w0, w1, a2 + ax, sx));
            u3 = i32x4.add(u3, scaledHalves(w0, w1, a3 + ax, sx));
            w0 = i16x8.extend_low_i8x16_u(y);
            w1 = i16x8.extend_high_i8x16_u(y);
            v0 = i32x4.add(v0, scaledHalves(w0, w1, ad + ay, sy));
            v1 = i32x4.add(v1, scaledHalves(w0, w1, a1 + ay, sy));
            v2 = i32x4.add(v2, scaledHalves(w0, w1, a2 + ay, sy));
            v3 = i32x4.add(v3, scaledHalves(w0, w1, a3 + ay, sy));
          }
        }
      }
    }
    if (!ASC_FEATURE_RELAXED_SIMD) {
      i0 = pairHalves(u0, v0);
      i1 = pairHalves(u1, v1);
      i2 = pairHalves(u2, v2);
      i3 = pairHalves(u3, v3);
    }
    const d = halfScale(load<u16>(p, 208));
    const so = sumsOff + (<usize>b << 5), xo = <usize>b << 2;
    s0 = blockSum(s0, i0, s8, d, ad, so, xo);
    pin(o, s0);
    s1 = blockSum(s1, i1, s8, d, a1, so, xo);
    pin(o1, s1);
    s2 = blockSum(s2, i2, s8, d, a2, so, xo);
    pin(o2, s2);
    s3 = blockSum(s3, i3, s8, d, a3, so, xo);
  }
  store<f32>(o, hsum(s0));
  store<f32>(o1, hsum(s1));
  store<f32>(o2, hsum(s2));
  store<f32>(o3, hsum(s3));
}

// The eight rows' float sums of rowQ6_K_8, in globals (one per instance, so per thread): in registers across the
// super-block loop they pushed the integer accumulators out of them.
let g0 = f32x4.splat(0), g1 = f32x4.splat(0), g2 = f32x4.splat(0), g3 = f32x4.splat(0);
let g4 = f32x4.splat(0), g5 = f32x4.splat(0), g6 = f32x4.splat(0), g7 = f32x4.splat(0), g8 = f32x4.splat(0);

/**
 * rowDotK for eight consecutive activation rows, or nine or two (G: row-tiles.ts's NineRows, TwoRows), relaxed build
 * only: each run of 16 values is unpacked once for all of them, and each output gets rowDotK's integer sums and float
 * operations in its order.
 */
function rowQ6_K_8<P, G>(wr: usize, a0: usize, ab: usize, nb: i32, o0: usize, outStep: usize): void {
  const n = changetype<G>(0).count();
  const m30 = v128.load(MASK_30), m0f = v128.load(MASK_0F);
  const sumsOff = <usize>nb << 2;
  const aqOff = <usize>nb * 36;
  const a1 = a0 + ab, a2 = a1 + ab, a3 = a2 + ab, a4 = a3 + ab, a5 = a4 + ab, a6 = a5 + ab, a7 = a6 + ab, a8 = a7 + ab;
  g0 = f32x4.splat(0); g1 = f32x4.splat(0); g2 = f32x4.splat(0); g3 = f32x4.splat(0);
  g4 = f32x4.splat(0); g5 = f32x4.splat(0); g6 = f32x4.splat(0); g7 = f32x4.splat(0);
  if (n > 8) g8 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = wr + <usize>b * Q6_K_BLOCK_BYTES;
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    let i4 = i32x4.splat(0), i5 = i32x4.splat(0), i6 = i32x4.splat(0), i7 = i32x4.splat(0), i8 = i32x4.splat(0);
    const aq = aqOff + (<usize>b << 8);
    const ap = pairOrderOffset(nb) + (<usize>b << 8);
    const s8 = v128.load(p + 192);
    // Groups g of halves h in one loop (nested, the inner loop's counter and a stack check cost more).
    for (let j: usize = 0; j < 4; j++) {
      const h = j >> 1, g = j & 1;
      const s16 = h == 0 ? i16x8.extend_low_i8x16_s(s8) : i16x8.extend_high_i8x16_s(s8);
      {
        const ql = p + (h << 6) + (g << 4), qh = p + 128 + (h << 5) + (g << 4);
        const l0 = v128.load(ql), l1 = v128.load(ql, 32), hb = v128.load(qh);
        const ag = aq + (h << 7) + (g << 4);
        // All four runs unpacked first, so that only they (not ql, qh and the masks) stay live beside the accumulators.
        const x1 = run1(l0, hb, m0f, m30), x2 = run2(l1, hb, m0f, m30), x3 = run3(l0, hb, m0f, m30), x4 = run4(l1, hb, m0f, m30);
        if (changetype<P>(0).paired()) {
          // Runs 1, 2 then 3, 4 (m = 0, 1 written out, not looped), each pair crossed once for the eight rows against
          // their run-pair copy of q (activation.ts): no shuffle per row.
          const ac = ap + (h << 7) + (g << 5);
          let cx = crossLo(x1, x2), cy = crossHi(x1, x2), sp = runScales(s16, 0, g, 0);
          i0 = crossedRunPairRow(i0, cx, cy, a0 + ac, sp);
          i1 = crossedRunPairRow(i1, cx, cy, a1 + ac, sp);
          if (n > 2) {
            i2 = crossedRunPairRow(i2, cx, cy, a2 + ac, sp);
            i3 = crossedRunPairRow(i3, cx, cy, a3 + ac, sp);
            i4 = crossedRunPairRow(i4, cx, cy, a4 + ac, sp);
            i5 = crossedRunPairRow(i5, cx, cy, a5 + ac, sp);
            i6 = crossedRunPairRow(i6, cx, cy, a6 + ac, sp);
            i7 = crossedRunPairRow(i7, cx, cy, a7 + ac, sp);
          }
          if (n > 8) i8 = crossedRunPairRow(i8, cx, cy, a8 + ac, sp);
          cx = crossLo(x3, x4);
          cy = crossHi(x3, x4);
          sp = runScales(s16, 0, g, 1);
          i0 = crossedRunPairRow(i0, cx, cy, a0 + ac + 64, sp);
          i1 = crossedRunPairRow(i1, cx, cy, a1 + ac + 64, sp);
          if (n > 2) {
            i2 = crossedRunPairRow(i2, cx, cy, a2 + ac + 64, sp);
            i3 = crossedRunPairRow(i3, cx, cy, a3 + ac + 64, sp);
            i4 = crossedRunPairRow(i4, cx, cy, a4 + ac + 64, sp);
            i5 = crossedRunPairRow(i5, cx, cy, a5 + ac + 64, sp);
            i6 = crossedRunPairRow(i6, cx, cy, a6 + ac + 64, sp);
            i7 = crossedRunPairRow(i7, cx, cy, a7 + ac + 64, sp);
          }
          if (n > 8) i8 = crossedRunPairRow(i8, cx, cy, a8 + ac + 64, sp);
        } else {
          for (let m: usize = 0; m < 2; m++) {
            const x = m == 0 ? x1 : x3;
            const y = m == 0 ? x2 : x4;
            const sp = runScales(s16, 0, g, m);
            const ax = ag + (m << 6), ay = ax + 32;
            i0 = runPairRow<P>(i0, x, y, a0 + ax, a0 + ay, sp);
            i1 = runPairRow<P>(i1, x, y, a1 + ax, a1 + ay, sp);
            if (n > 2) {
              i2 = runPairRow<P>(i2, x, y, a2 + ax, a2 + ay, sp);
              i3 = runPairRow<P>(i3, x, y, a3 + ax, a3 + ay, sp);
              i4 = runPairRow<P>(i4, x, y, a4 + ax, a4 + ay, sp);
              i5 = runPairRow<P>(i5, x, y, a5 + ax, a5 + ay, sp);
              i6 = runPairRow<P>(i6, x, y, a6 + ax, a6 + ay, sp);
              i7 = runPairRow<P>(i7, x, y, a7 + ax, a7 + ay, sp);
            }
            if (n > 8) i8 = runPairRow<P>(i8, x, y, a8 + ax, a8 + ay, sp);
          }
        }
      }
    }
    const d = halfScale(load<u16>(p, 208));
    const so = sumsOff + (<usize>b << 5), xo = <usize>b << 2;
    g0 = blockSum(g0, i0, s8, d, a0, so, xo);
    g1 = blockSum(g1, i1, s8, d, a1, so, xo);
    if (n > 2) {
      g2 = blockSum(g2, i2, s8, d, a2, so, xo);
      g3 = blockSum(g3, i3, s8, d, a3, so, xo);
      g4 = blockSum(g4, i4, s8, d, a4, so, xo);
      g5 = blockSum(g5, i5, s8, d, a5, so, xo);
      g6 = blockSum(g6, i6, s8, d, a6, so, xo);
      g7 = blockSum(g7, i7, s8, d, a7, so, xo);
    }
    if (n > 8) g8 = blockSum(g8, i8, s8, d, a8, so, xo);
  }
  storeRowSums(n, o0, outStep, g0, g1, g2, g3, g4, g5, g6, g7, g8);
}

/**
 * SIMD128: a run of 16 widened weights (lo, hi) against its activations at a, scaled by sx (i16 splat):
 * [sx·(values 0–3), sx·(4–7), sx·(8–11), sx·(12–15)].
 */
// @ts-ignore: decorator
@inline function scaledHalves(lo: v128, hi: v128, a: usize, sx: v128): v128 {
  return i32x4.dot_i16x8_s(i16x8.narrow_i32x4_s(i32x4.dot_i16x8_s(lo, v128.load(a)), i32x4.dot_i16x8_s(hi, v128.load(a, 16))), sx);
}

/** SIMD128: [u0 + u1, u2 + u3, v0 + v1, v2 + v3] — pairTerm's lanes from scaledHalves' sums of the x and y runs. */
// @ts-ignore: decorator
@inline function pairHalves(u: v128, v: v128): v128 {
  return i32x4.add(i32x4.shuffle(u, v, 0, 2, 4, 6), i32x4.shuffle(u, v, 1, 3, 5, 7));
}

/** isum plus two runs' term (x against ax, y against ay, scales sp) for one activation row: relaxed build only. */
// @ts-ignore: decorator
@inline function runPairRow<P>(isum: v128, x: v128, y: v128, ax: usize, ay: usize, sp: v128): v128 {
  if (changetype<P>(0).paired()) return i32x4.add(isum, pairTermOfPairs(pairSums16(x, ax), pairSums16(y, ay), sp));
  return i32x4.add(isum, pairTerm(udot16(x, ax, i32x4.splat(0)), udot16(y, ay, i32x4.splat(0)), sp));
}

/** runPairRow's integers from runs crossed once for the batch (cx, cy) against run-pair-ordered q at a. */
// @ts-ignore: decorator
@inline function crossedRunPairRow(isum: v128, cx: v128, cy: v128, a: usize, sp: v128): v128 {
  return i32x4.add(isum, i32x4.dot_i16x8_s(crossedSums(cx, cy, a), sp));
}

/** s plus one super-block's contribution for the activation row at ad: rowDotK's float operations, in its order. */
// @ts-ignore: decorator
@inline function blockSum(s: v128, isum: v128, s8: v128, d: f32, ad: usize, so: usize, xo: usize): v128 {
  return f32x4.add(s, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(isum, i32x4.shl(corr(s8, ad + so), 5))), f32x4.splat(d * load<f32>(ad + xo))));
}

export function matmulQ6_K(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 8;
  const rowBytes = <usize>nb * Q6_K_BLOCK_BYTES;
  if (!ASC_FEATURE_RELAXED_SIMD) matmulRows4<KRows<Q6KBlock<FusedDot>>>(w, rowBytes, nb, row0, row1, act, actBytes, nAct, out, outStride);
  else if (pairedLowering) matmulRows8<KRows<Q6KBlock<PairedDot>>>(w, rowBytes, nb, row0, row1, act, actBytes, nAct, out, outStride);
  else matmulRows8<KRows<Q6KBlock<FusedDot>>>(w, rowBytes, nb, row0, row1, act, actBytes, nAct, out, outStride);
}
