// Q2_K (ggml block_q2_K): super-blocks of 256 values, 84 bytes: u8 scales[16], u8 qs[64], f16 d, f16 dmin.
// Sixteen sub-blocks of 16; scales[s] holds a 4-bit scale (low nibble) and a 4-bit minimum (high nibble). Per half h
// (qs += 32h) and shift j < 4, values 128h + 32j + l (l < 32) are (qs[l] >> 2j) & 3, sub-block 8h + 2j + l/16:
//   x = d·sc·q − dmin·m.   Activations: Q8_K, or Q8_KS in the relaxed build (as ggml's vec_dot_q2_K_q8_K):
//   W·x = xd·(d·Σ_s sc_s Σ q·a − dmin·Σ_s m_s·bsum_s).
import { halfToF32 } from './half-scale';
import { matmulRows4 } from './row-tiles';
import { KRows } from './k-rows';
import { hsum, laneOrder, pin } from '../simd';
import { KACT_BYTES, scaledHi, scaledLo, scaledUDot16, scaledUDot32Of, splatI16 } from './int-dot';
import { FusedDot, PairedDot, pairedLowering } from './dot-lowering';

export const Q2_K_BLOCK_BYTES: usize = 84;

export function dequantQ2_K(src: usize, dst: usize, n: i32): void {
  const nb = n >> 8;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q2_K_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p, 80));
    const dmin = halfToF32(load<u16>(p, 82));
    for (let h = 0; h < 2; h++) {
      const q = p + 16 + (<usize>h << 5);
      for (let j = 0; j < 4; j++) {
        const y = dst + (<usize>b << 10) + ((<usize>(128 * h + 32 * j)) << 2);
        for (let half = 0; half < 2; half++) {
          const sc = <i32>load<u8>(p + 8 * h + 2 * j + half);
          const dl = d * <f32>(sc & 15), ml = dmin * <f32>(sc >> 4);
          for (let l = 16 * half; l < 16 * half + 16; l++) {
            store<f32>(y + (<usize>l << 2), dl * <f32>((<i32>load<u8>(q + l) >> (2 * j)) & 3) - ml);
          }
        }
      }
    }
  }
}

/** Σ m_s·bsum_s: the 16 minimums (bytes of m8) widened to i16 against the 16 block sums at bs. */
// @ts-ignore: decorator
@inline function minsQ2(m8: v128, bs: usize): v128 {
  return i32x4.add(
    i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(m8), v128.load(bs)),
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(m8), v128.load(bs, 16)),
  );
}

/**
 * Two consecutive sub-blocks (bytes w0 scaled by s0 against the activations at a, w1 by s1 at a + 16 values) added
 * to isum: in one scaledUDot32Of (relaxed), or one scaledUDot16 each (SIMD128).
 */
// @ts-ignore: decorator
@inline function subBlocksDot<P>(w0: v128, s0: v128, w1: v128, s1: v128, a: usize, isum: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return scaledUDot32Of<P>(scaledLo(w0, s0), scaledLo(w1, s1), a, isum);
  isum = scaledUDot16(scaledLo(w0, s0), scaledHi(w0, s0), a, isum);
  return scaledUDot16(scaledLo(w1, s1), scaledHi(w1, s1), a + 16 * KACT_BYTES, isum);
}

/**
 * Shift j's two sub-blocks (bits 2j..2j+1 of the 32 bytes q0, q1) of a half whose scales are the i16 lanes of s8
 * (sub-blocks 2j and 2j + 1 of the half), against their activations at a, added to isum.
 */
// @ts-ignore: decorator
@inline function shiftDot<P>(q0: v128, q1: v128, j: i32, s8: v128, a: usize, isum: v128): v128 {
  const three = i8x16.splat(3);
  // 16-bit shifts: the bits that cross into the neighbouring byte are masked off.
  const w0 = v128.and(i16x8.shr_u(q0, 2 * j), three), w1 = v128.and(i16x8.shr_u(q1, 2 * j), three);
  const aj = a + (<usize>j << 5) * KACT_BYTES;
  // A 4-bit scale times a 2-bit weight is at most 45: the weights are scaled before the dot (subBlocksDot).
  const sa = splatI16(s8, <usize>(2 * j)), sb = splatI16(s8, <usize>(2 * j + 1));
  return subBlocksDot<P>(w0, sa, w1, sb, aj, isum);
}

/** Half h (values 128h..128h + 127) of a super-block at p against its activations at a, added to isum. */
// @ts-ignore: decorator
@inline function halfDot<P>(p: usize, h: i32, s8: v128, a: usize, isum: v128): v128 {
  let q0 = v128.load(p + 16 + (<usize>h << 5)), q1 = v128.load(p + 32 + (<usize>h << 5));
  if (ASC_FEATURE_RELAXED_SIMD) {
    q0 = laneOrder(q0);
    q1 = laneOrder(q1);
  }
  // Constant shift counts: one psrlw each.
  isum = shiftDot<P>(q0, q1, 0, s8, a, isum);
  isum = shiftDot<P>(q0, q1, 1, s8, a, isum);
  isum = shiftDot<P>(q0, q1, 2, s8, a, isum);
  return shiftDot<P>(q0, q1, 3, s8, a, isum);
}

// @ts-ignore: decorator
@inline function blockDot<P>(p: usize, xd: f32, bsums: usize, aq: usize): v128 {
  // The 16 scales (low nibbles) widened to i16 once, for splatI16.
  const sc = v128.and(v128.load(p), i8x16.splat(15));
  let isum = halfDot<P>(p, 0, i16x8.extend_low_i8x16_u(sc), aq, i32x4.splat(0));
  isum = halfDot<P>(p, 1, i16x8.extend_high_i8x16_u(sc), aq + 128 * KACT_BYTES, isum);
  // Σ m_s·bsum_s. Per byte, (scale byte >> 4) lands in the low 4 bits; the neighbour's bits are masked off.
  const msum = minsQ2(v128.and(i16x8.shr_u(v128.load(p), 4), i8x16.splat(15)), bsums);
  const dd = halfToF32(load<u16>(p, 80)) * xd;
  const dm = halfToF32(load<u16>(p, 82)) * xd;
  return f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(dd)), f32x4.mul(f32x4.convert_i32x4_s(msum), f32x4.splat(dm)));
}

/** Q2_K for the K-quants' rows (k-rows.ts): its super-block and its batch products. */
@final @unmanaged class Q2KBlock<P> {
  // @ts-ignore: decorator
  @inline blockBytes(): usize { return Q2_K_BLOCK_BYTES; }
  // @ts-ignore: decorator
  @inline blockDot(p: usize, xd: f32, bsums: usize, aq: usize): v128 { return blockDot<P>(p, xd, bsums, aq); }
  // @ts-ignore: decorator
  @inline row4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void { rowQ2_K_4<P>(wr, ad, a1, a2, a3, nb, o, o1, o2, o3); }
}

/** rowDotK for four activation rows: each sub-block is unpacked and scaled once. */
function rowQ2_K_4<P>(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const three = i8x16.splat(3);
  const sumsOff = <usize>nb << 2;
  const aqOff = <usize>nb * 36;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = wr + <usize>b * Q2_K_BLOCK_BYTES;
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    const aq = aqOff + (<usize>b << 8) * KACT_BYTES;
    const sc = v128.and(v128.load(p), i8x16.splat(15));
    for (let t = 0; t < 8; t++) {
      // t = 4h + j: bits 2j..2j+1 of qs[32h..32h+31], sub-blocks 2t and 2t+1.
      const h = t >> 2, j = t & 3;
      let q0 = v128.load(p + 16 + (<usize>h << 5)), q1 = v128.load(p + 32 + (<usize>h << 5));
      if (ASC_FEATURE_RELAXED_SIMD) {
        q0 = laneOrder(q0);
        q1 = laneOrder(q1);
      }
      const w0 = v128.and(i16x8.shr_u(q0, 2 * j), three), w1 = v128.and(i16x8.shr_u(q1, 2 * j), three);
      const at = aq + (<usize>t << 5) * KACT_BYTES;
      const s8 = h == 0 ? i16x8.extend_low_i8x16_u(sc) : i16x8.extend_high_i8x16_u(sc);
      if (ASC_FEATURE_RELAXED_SIMD) {
        // Both sub-blocks' scaled weights, then one scaledUDot32Of a row.
        const x0 = scaledLo(w0, splatI16(s8, <usize>(2 * j))), x1 = scaledLo(w1, splatI16(s8, <usize>(2 * j + 1)));
        i0 = scaledUDot32Of<P>(x0, x1, ad + at, i0);
        i1 = scaledUDot32Of<P>(x0, x1, a1 + at, i1);
        i2 = scaledUDot32Of<P>(x0, x1, a2 + at, i2);
        i3 = scaledUDot32Of<P>(x0, x1, a3 + at, i3);
        continue;
      }
      {
        const s16 = splatI16(s8, <usize>(2 * j));
        const lo = scaledLo(w0, s16), hi = scaledHi(w0, s16);
        i0 = scaledUDot16(lo, hi, ad + at, i0);
        pin(o, i0);
        i1 = scaledUDot16(lo, hi, a1 + at, i1);
        pin(o1, i1);
        i2 = scaledUDot16(lo, hi, a2 + at, i2);
        pin(o2, i2);
        i3 = scaledUDot16(lo, hi, a3 + at, i3);
      }
      {
        const s16 = splatI16(s8, <usize>(2 * j + 1));
        const lo = scaledLo(w1, s16), hi = scaledHi(w1, s16);
        i0 = scaledUDot16(lo, hi, ad + at + 16 * KACT_BYTES, i0);
        pin(o, i0);
        i1 = scaledUDot16(lo, hi, a1 + at + 16 * KACT_BYTES, i1);
        pin(o1, i1);
        i2 = scaledUDot16(lo, hi, a2 + at + 16 * KACT_BYTES, i2);
        pin(o2, i2);
        i3 = scaledUDot16(lo, hi, a3 + at + 16 * KACT_BYTES, i3);
      }
    }
    const m8 = v128.and(i16x8.shr_u(v128.load(p), 4), i8x16.splat(15));
    const d = halfToF32(load<u16>(p, 80)), dmin = halfToF32(load<u16>(p, 82));
    const so = sumsOff + (<usize>b << 5), xo = <usize>b << 2;
    let xd: f32;
    xd = load<f32>(ad + xo);
    s0 = f32x4.add(s0, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i0), f32x4.splat(d * xd)), f32x4.mul(f32x4.convert_i32x4_s(minsQ2(m8, ad + so)), f32x4.splat(dmin * xd))));
    pin(o, s0);
    xd = load<f32>(a1 + xo);
    s1 = f32x4.add(s1, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i1), f32x4.splat(d * xd)), f32x4.mul(f32x4.convert_i32x4_s(minsQ2(m8, a1 + so)), f32x4.splat(dmin * xd))));
    pin(o1, s1);
    xd = load<f32>(a2 + xo);
    s2 = f32x4.add(s2, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i2), f32x4.splat(d * xd)), f32x4.mul(f32x4.convert_i32x4_s(minsQ2(m8, a2 + so)), f32x4.splat(dmin * xd))));
    pin(o2, s2);
    xd = load<f32>(a3 + xo);
    s3 = f32x4.add(s3, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i3), f32x4.splat(d * xd)), f32x4.mul(f32x4.convert_i32x4_s(minsQ2(m8, a3 + so)), f32x4.splat(dmin * xd))));
  }
  store<f32>(o, hsum(s0));
  store<f32>(o1, hsum(s1));
  store<f32>(o2, hsum(s2));
  store<f32>(o3, hsum(s3));
}

export function matmulQ2_K(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 8;
  const rowBytes = <usize>nb * Q2_K_BLOCK_BYTES;
  if (ASC_FEATURE_RELAXED_SIMD && pairedLowering) matmulRows4<KRows<Q2KBlock<PairedDot>>>(w, rowBytes, nb, row0, row1, act, actBytes, nAct, out, outStride);
  else matmulRows4<KRows<Q2KBlock<FusedDot>>>(w, rowBytes, nb, row0, row1, act, actBytes, nAct, out, outStride);
}
