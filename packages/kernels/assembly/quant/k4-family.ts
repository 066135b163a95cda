// The product shared by Q4_K and Q5_K, whose super-blocks differ only in a fifth bit: f16 d, f16 dmin, 12 bytes of
// 6-bit scales and minimums (k-scales.ts), then (Q5_K only) qh[32], then qs[128]. Sub-blocks 2k and 2k+1 (k < 4) share
// qs[32k..32k+31]: 2k takes the low nibbles, 2k+1 the high ones, and in Q5_K bits 2k and 2k+1 of qh[l] as their fifth
// bits;  x = d·sc·q − dmin·m. Activations: Q8_K, or Q8_KS in the relaxed build (activation.ts), as ggml's
// vec_dot_q4_K_q8_K / vec_dot_q5_K_q8_K:  W·x = xd·(d·Σ_j sc_j Σ q·a − dmin·Σ_j m_j·bsum_j).
// Each type is a layout class (the `K4Layout` shape below) whose methods inline to constants, so the generic
// functions compile to one product per type with no run-time branch.
import { halfScale } from './half-scale';
import { hsum, LANE_ORDER, laneOrder, MASK_0F, MASK_10, pin } from '../simd';
import { dot32, KACT_BYTES, nibHi, nibLo, udot32, unpackedUDot32 } from './int-dot';
import { minsDot, minsK4, scalesK4 } from './k-scales';

/** Q4_K's layout: 144 bytes, qs at 16, no fifth bits. */
@final @unmanaged export class Q4KLayout {
  // @ts-ignore: decorator
  @inline blockBytes(): usize { return 144; }
  // @ts-ignore: decorator
  @inline qsAt(): usize { return 16; }
  // @ts-ignore: decorator
  @inline hasFifth(): bool { return false; }
}

/** Q5_K's layout: 176 bytes, qh at 16, qs at 48. */
@final @unmanaged export class Q5KLayout {
  // @ts-ignore: decorator
  @inline blockBytes(): usize { return 176; }
  // @ts-ignore: decorator
  @inline qsAt(): usize { return 48; }
  // @ts-ignore: decorator
  @inline hasFifth(): bool { return true; }
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

/** W[r]·act for one weight row at wr and one prepared activation row at ad of nb super-blocks. */
// @ts-ignore: decorator
@inline export function rowDotK4<L>(wr: usize, ad: usize, nb: i32): f32 {
  const layout = changetype<L>(0);
  const sums = ad + (<usize>nb << 2);
  const aq = ad + <usize>nb * 36;
  let s = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    s = f32x4.add(s, blockDot<L>(wr + <usize>b * layout.blockBytes(), load<f32>(ad + (<usize>b << 2)), sums + (<usize>b << 5), aq + (<usize>b << 8) * KACT_BYTES));
  }
  return hsum(s);
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

