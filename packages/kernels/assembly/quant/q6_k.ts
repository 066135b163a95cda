// Q6_K (ggml block_q6_K): super-blocks of 256 values, 210 bytes: u8 ql[128], u8 qh[64], i8 scales[16], f16 d.
// Sixteen sub-blocks of 16 with an 8-bit signed scale; 6-bit values q = (4 low bits from ql) | (2 high bits from qh) << 4,
// x = d·sc·(q − 32). Per half h (128 values; ql += 64h, qh += 32h, sc += 8h), l < 32:
//   x[l]      from ql[l] & 15,     qh[l] bits 0–1, scale sc[l/16]
//   x[l + 32] from ql[l + 32] & 15, qh[l] bits 2–3, scale sc[2 + l/16]
//   x[l + 64] from ql[l] >> 4,     qh[l] bits 4–5, scale sc[4 + l/16]
//   x[l + 96] from ql[l + 32] >> 4, qh[l] bits 6–7, scale sc[6 + l/16]
// Activations: Q8_K, or Q8_KS in the relaxed build (activation.ts). The −32 is applied once per block through the block sums: Σ sc·(q−32)·a = Σ sc·q·a − 32·Σ sc·bsum.
import { halfScale, halfToF32 } from './half-scale';
import { matmulRows4, matmulRows8 } from './row-tiles';
import { rowDotK } from './k-rows';
import { dot16, hsum, LANE_ORDER, laneOrder, MASK_0F, MASK_30, pin } from '../simd';
import { KACT_BYTES, nibHi, nibLo, udot16, uDot16, unpackedUDot16 } from './int-dot';

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

/**
 * One group of 64 values (16 bytes of ql at ql and ql + 32, 16 of qh at qh) against its activations at a: four runs of
 * 16, each times its scale (s1..s4, splatted), added to isum.
 */
// @ts-ignore: decorator
@inline function groupDot(ql: usize, qh: usize, a: usize, m0f: v128, m30: v128, ord: v128, s1: v128, s2: v128, s3: v128, s4: v128, isum: v128): v128 {
  let l0 = v128.load(ql), l1 = v128.load(ql, 32), hb = v128.load(qh);
  if (ASC_FEATURE_RELAXED_SIMD) {
    l0 = i8x16.relaxed_swizzle(l0, ord);
    l1 = i8x16.relaxed_swizzle(l1, ord);
    hb = i8x16.relaxed_swizzle(hb, ord);
  }
  // 16-bit shifts then masks: bits crossing into the neighbouring byte are masked off.
  const w1 = v128.or(v128.and(l0, m0f), v128.and(i16x8.shl(hb, 4), m30));
  const w2 = v128.or(v128.and(l1, m0f), v128.and(i16x8.shl(hb, 2), m30));
  const w3 = v128.or(v128.and(i16x8.shr_u(l0, 4), m0f), v128.and(hb, m30));
  const w4 = v128.or(v128.and(i16x8.shr_u(l1, 4), m0f), v128.and(i16x8.shr_u(hb, 2), m30));
  const d12 = i32x4.add(i32x4.mul(uDot16(w1, a), s1), i32x4.mul(uDot16(w2, a + 32 * KACT_BYTES), s2));
  const d34 = i32x4.add(i32x4.mul(uDot16(w3, a + 64 * KACT_BYTES), s3), i32x4.mul(uDot16(w4, a + 96 * KACT_BYTES), s4));
  return i32x4.add(isum, i32x4.add(d12, d34));
}

/** One super-block against one prepared Q8_K block: its f32x4 contribution. */
// @ts-ignore: decorator
@inline function blockDot(p: usize, xd: f32, bsums: usize, aq: usize): v128 {
  // The masks once per super-block, not once per use (each use is a load from static data).
  const m30 = v128.load(MASK_30);
  const m0f = v128.load(MASK_0F);
  const ord = ASC_FEATURE_RELAXED_SIMD ? v128.load(LANE_ORDER) : m0f;
  // The 16 scales widened to i32 once (scale j in lane j & 3 of S[j >> 2]); group (h, g) takes scales 8h + g + 2m,
  // each splatted by a constant shuffle. The four groups are written out, not looped.
  const s8 = v128.load(p + 192);
  const lo = i16x8.extend_low_i8x16_s(s8), hi = i16x8.extend_high_i8x16_s(s8);
  const S0 = i32x4.extend_low_i16x8_s(lo), S1 = i32x4.extend_high_i16x8_s(lo);
  const S2 = i32x4.extend_low_i16x8_s(hi), S3 = i32x4.extend_high_i16x8_s(hi);
  const half = 128 * KACT_BYTES, run = 16 * KACT_BYTES;
  let isum = groupDot(p, p + 128, aq, m0f, m30, ord,
    i32x4.shuffle(S0, S0, 0, 0, 0, 0), i32x4.shuffle(S0, S0, 2, 2, 2, 2), i32x4.shuffle(S1, S1, 0, 0, 0, 0), i32x4.shuffle(S1, S1, 2, 2, 2, 2), i32x4.splat(0));
  isum = groupDot(p + 16, p + 144, aq + run, m0f, m30, ord,
    i32x4.shuffle(S0, S0, 1, 1, 1, 1), i32x4.shuffle(S0, S0, 3, 3, 3, 3), i32x4.shuffle(S1, S1, 1, 1, 1, 1), i32x4.shuffle(S1, S1, 3, 3, 3, 3), isum);
  isum = groupDot(p + 64, p + 160, aq + half, m0f, m30, ord,
    i32x4.shuffle(S2, S2, 0, 0, 0, 0), i32x4.shuffle(S2, S2, 2, 2, 2, 2), i32x4.shuffle(S3, S3, 0, 0, 0, 0), i32x4.shuffle(S3, S3, 2, 2, 2, 2), isum);
  isum = groupDot(p + 80, p + 176, aq + half + run, m0f, m30, ord,
    i32x4.shuffle(S2, S2, 1, 1, 1, 1), i32x4.shuffle(S2, S2, 3, 3, 3, 3), i32x4.shuffle(S3, S3, 1, 1, 1, 1), i32x4.shuffle(S3, S3, 3, 3, 3, 3), isum);
  // Σ sc·bsum: the 16 scales (as i16) against the 16 block sums.
  const corr = i32x4.add(i32x4.dot_i16x8_s(lo, v128.load(bsums)), i32x4.dot_i16x8_s(hi, v128.load(bsums, 16)));
  isum = i32x4.sub(isum, i32x4.shl(corr, 5));
  return f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(halfScale(load<u16>(p, 208)) * xd));
}

/** Q6_K's super-block for rowDotK (k-rows.ts). */
@final @unmanaged class Q6KBlock {
  // @ts-ignore: decorator
  @inline blockBytes(): usize { return Q6_K_BLOCK_BYTES; }
  // @ts-ignore: decorator
  @inline blockDot(p: usize, xd: f32, bsums: usize, aq: usize): v128 { return blockDot(p, xd, bsums, aq); }
}

function rowQ6_K(wr: usize, ad: usize, nb: i32): f32 {
  return rowDotK<Q6KBlock>(wr, ad, nb);
}

/** Σ sc·bsum for the 16 scales s8 and the 16 block sums at bs. */
// @ts-ignore: decorator
@inline function corr(s8: v128, bs: usize): v128 {
  return i32x4.add(
    i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(s8), v128.load(bs)),
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(s8), v128.load(bs, 16)),
  );
}

/** rowDotK for four activation rows: each group of 16 values is unpacked and widened once. */
function rowQ6_K_4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const m30 = v128.load(MASK_30);
  const sumsOff = <usize>nb << 2;
  const aqOff = <usize>nb * 36;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = wr + <usize>b * Q6_K_BLOCK_BYTES;
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    const aq = aqOff + (<usize>b << 8) * KACT_BYTES;
    for (let h = 0; h < 2; h++) {
      for (let g = 0; g < 2; g++) {
        const ql = p + (<usize>h << 6) + (<usize>g << 4), qh = p + 128 + (<usize>h << 5) + (<usize>g << 4);
        const sc = p + 192 + (<usize>h << 3) + <usize>g;
        let l0 = v128.load(ql), l1 = v128.load(ql + 32), hb = v128.load(qh);
        if (ASC_FEATURE_RELAXED_SIMD) {
          l0 = laneOrder(l0);
          l1 = laneOrder(l1);
          hb = laneOrder(hb);
        }
        const ag = aq + ((<usize>h << 7) + (<usize>g << 4)) * KACT_BYTES;
        {
          const w = v128.or(nibLo(l0), v128.and(i16x8.shl(hb, 4), m30));
          const lo = ASC_FEATURE_RELAXED_SIMD ? w : i16x8.extend_low_i8x16_u(w), hi = i16x8.extend_high_i8x16_u(w);
          const scale = i32x4.splat(load<i8>(sc + 0));
          const a = ag + 0;
          i0 = i32x4.add(i0, i32x4.mul(unpackedUDot16(lo, hi, ad + a), scale));
          pin(o, i0);
          i1 = i32x4.add(i1, i32x4.mul(unpackedUDot16(lo, hi, a1 + a), scale));
          pin(o1, i1);
          i2 = i32x4.add(i2, i32x4.mul(unpackedUDot16(lo, hi, a2 + a), scale));
          pin(o2, i2);
          i3 = i32x4.add(i3, i32x4.mul(unpackedUDot16(lo, hi, a3 + a), scale));
        }
        {
          const w = v128.or(nibLo(l1), v128.and(i16x8.shl(hb, 2), m30));
          const lo = ASC_FEATURE_RELAXED_SIMD ? w : i16x8.extend_low_i8x16_u(w), hi = i16x8.extend_high_i8x16_u(w);
          const scale = i32x4.splat(load<i8>(sc + 2));
          const a = ag + 32 * KACT_BYTES;
          i0 = i32x4.add(i0, i32x4.mul(unpackedUDot16(lo, hi, ad + a), scale));
          pin(o, i0);
          i1 = i32x4.add(i1, i32x4.mul(unpackedUDot16(lo, hi, a1 + a), scale));
          pin(o1, i1);
          i2 = i32x4.add(i2, i32x4.mul(unpackedUDot16(lo, hi, a2 + a), scale));
          pin(o2, i2);
          i3 = i32x4.add(i3, i32x4.mul(unpackedUDot16(lo, hi, a3 + a), scale));
        }
        {
          const w = v128.or(nibHi(l0), v128.and(hb, m30));
          const lo = ASC_FEATURE_RELAXED_SIMD ? w : i16x8.extend_low_i8x16_u(w), hi = i16x8.extend_high_i8x16_u(w);
          const scale = i32x4.splat(load<i8>(sc + 4));
          const a = ag + 64 * KACT_BYTES;
          i0 = i32x4.add(i0, i32x4.mul(unpackedUDot16(lo, hi, ad + a), scale));
          pin(o, i0);
          i1 = i32x4.add(i1, i32x4.mul(unpackedUDot16(lo, hi, a1 + a), scale));
          pin(o1, i1);
          i2 = i32x4.add(i2, i32x4.mul(unpackedUDot16(lo, hi, a2 + a), scale));
          pin(o2, i2);
          i3 = i32x4.add(i3, i32x4.mul(unpackedUDot16(lo, hi, a3 + a), scale));
        }
        {
          const w = v128.or(nibHi(l1), v128.and(i16x8.shr_u(hb, 2), m30));
          const lo = ASC_FEATURE_RELAXED_SIMD ? w : i16x8.extend_low_i8x16_u(w), hi = i16x8.extend_high_i8x16_u(w);
          const scale = i32x4.splat(load<i8>(sc + 6));
          const a = ag + 96 * KACT_BYTES;
          i0 = i32x4.add(i0, i32x4.mul(unpackedUDot16(lo, hi, ad + a), scale));
          pin(o, i0);
          i1 = i32x4.add(i1, i32x4.mul(unpackedUDot16(lo, hi, a1 + a), scale));
          pin(o1, i1);
          i2 = i32x4.add(i2, i32x4.mul(unpackedUDot16(lo, hi, a2 + a), scale));
          pin(o2, i2);
          i3 = i32x4.add(i3, i32x4.mul(unpackedUDot16(lo, hi, a3 + a), scale));
        }
      }
    }
    const s8 = v128.load(p + 192);
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
let g4 = f32x4.splat(0), g5 = f32x4.splat(0), g6 = f32x4.splat(0), g7 = f32x4.splat(0);

/**
 * rowDotK for eight consecutive activation rows (relaxed build only): each run of 16 values is unpacked once for the
 * eight, and each output gets rowDotK's float operations in its order.
 */
function rowQ6_K_8(wr: usize, a0: usize, ab: usize, nb: i32, o0: usize, outStep: usize): void {
  const m30 = v128.load(MASK_30);
  const sumsOff = <usize>nb << 2;
  const aqOff = <usize>nb * 36;
  const a1 = a0 + ab, a2 = a1 + ab, a3 = a2 + ab, a4 = a3 + ab, a5 = a4 + ab, a6 = a5 + ab, a7 = a6 + ab;
  g0 = f32x4.splat(0); g1 = f32x4.splat(0); g2 = f32x4.splat(0); g3 = f32x4.splat(0);
  g4 = f32x4.splat(0); g5 = f32x4.splat(0); g6 = f32x4.splat(0); g7 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = wr + <usize>b * Q6_K_BLOCK_BYTES;
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    let i4 = i32x4.splat(0), i5 = i32x4.splat(0), i6 = i32x4.splat(0), i7 = i32x4.splat(0);
    const aq = aqOff + (<usize>b << 8);
    for (let h = 0; h < 2; h++) {
      for (let g = 0; g < 2; g++) {
        const ql = p + (<usize>h << 6) + (<usize>g << 4), qh = p + 128 + (<usize>h << 5) + (<usize>g << 4);
        const sc = p + 192 + (<usize>h << 3) + <usize>g;
        const l0 = laneOrder(v128.load(ql)), l1 = laneOrder(v128.load(ql + 32)), hb = laneOrder(v128.load(qh));
        const ag = aq + (<usize>h << 7) + (<usize>g << 4);
        // The four runs of 16 (see the file's head), written out.
        let w = v128.or(nibLo(l0), v128.and(i16x8.shl(hb, 4), m30));
        let scale = i32x4.splat(load<i8>(sc));
        let a = ag;
        i0 = scaledDot16(i0, w, a0 + a, scale);
        i1 = scaledDot16(i1, w, a1 + a, scale);
        i2 = scaledDot16(i2, w, a2 + a, scale);
        i3 = scaledDot16(i3, w, a3 + a, scale);
        i4 = scaledDot16(i4, w, a4 + a, scale);
        i5 = scaledDot16(i5, w, a5 + a, scale);
        i6 = scaledDot16(i6, w, a6 + a, scale);
        i7 = scaledDot16(i7, w, a7 + a, scale);
        w = v128.or(nibLo(l1), v128.and(i16x8.shl(hb, 2), m30));
        scale = i32x4.splat(load<i8>(sc, 2));
        a = ag + 32;
        i0 = scaledDot16(i0, w, a0 + a, scale);
        i1 = scaledDot16(i1, w, a1 + a, scale);
        i2 = scaledDot16(i2, w, a2 + a, scale);
        i3 = scaledDot16(i3, w, a3 + a, scale);
        i4 = scaledDot16(i4, w, a4 + a, scale);
        i5 = scaledDot16(i5, w, a5 + a, scale);
        i6 = scaledDot16(i6, w, a6 + a, scale);
        i7 = scaledDot16(i7, w, a7 + a, scale);
        w = v128.or(nibHi(l0), v128.and(hb, m30));
        scale = i32x4.splat(load<i8>(sc, 4));
        a = ag + 64;
        i0 = scaledDot16(i0, w, a0 + a, scale);
        i1 = scaledDot16(i1, w, a1 + a, scale);
        i2 = scaledDot16(i2, w, a2 + a, scale);
        i3 = scaledDot16(i3, w, a3 + a, scale);
        i4 = scaledDot16(i4, w, a4 + a, scale);
        i5 = scaledDot16(i5, w, a5 + a, scale);
        i6 = scaledDot16(i6, w, a6 + a, scale);
        i7 = scaledDot16(i7, w, a7 + a, scale);
        w = v128.or(nibHi(l1), v128.and(i16x8.shr_u(hb, 2), m30));
        scale = i32x4.splat(load<i8>(sc, 6));
        a = ag + 96;
        i0 = scaledDot16(i0, w, a0 + a, scale);
        i1 = scaledDot16(i1, w, a1 + a, scale);
        i2 = scaledDot16(i2, w, a2 + a, scale);
        i3 = scaledDot16(i3, w, a3 + a, scale);
        i4 = scaledDot16(i4, w, a4 + a, scale);
        i5 = scaledDot16(i5, w, a5 + a, scale);
        i6 = scaledDot16(i6, w, a6 + a, scale);
        i7 = scaledDot16(i7, w, a7 + a, scale);
      }
    }
    const s8 = v128.load(p + 192);
    const d = halfScale(load<u16>(p, 208));
    const so = sumsOff + (<usize>b << 5), xo = <usize>b << 2;
    g0 = blockSum(g0, i0, s8, d, a0, so, xo);
    g1 = blockSum(g1, i1, s8, d, a1, so, xo);
    g2 = blockSum(g2, i2, s8, d, a2, so, xo);
    g3 = blockSum(g3, i3, s8, d, a3, so, xo);
    g4 = blockSum(g4, i4, s8, d, a4, so, xo);
    g5 = blockSum(g5, i5, s8, d, a5, so, xo);
    g6 = blockSum(g6, i6, s8, d, a6, so, xo);
    g7 = blockSum(g7, i7, s8, d, a7, so, xo);
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

/** isum + scale · (16 weights w · the 16 int8 activations at a): relaxed build only. */
// @ts-ignore: decorator
@inline function scaledDot16(isum: v128, w: v128, a: usize, scale: v128): v128 {
  return i32x4.add(isum, i32x4.mul(udot16(w, a, i32x4.splat(0)), scale));
}

/** s plus one super-block's contribution for the activation row at ad: rowDotK's float operations, in its order. */
// @ts-ignore: decorator
@inline function blockSum(s: v128, isum: v128, s8: v128, d: f32, ad: usize, so: usize, xo: usize): v128 {
  return f32x4.add(s, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(isum, i32x4.shl(corr(s8, ad + so), 5))), f32x4.splat(d * load<f32>(ad + xo))));
}

export function matmulQ6_K(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 8;
  if (ASC_FEATURE_RELAXED_SIMD) matmulRows8(rowQ6_K, rowQ6_K_4, rowQ6_K_8, w, <usize>nb * Q6_K_BLOCK_BYTES, nb, row0, row1, act, actBytes, nAct, out, outStride);
  else matmulRows4(rowQ6_K, rowQ6_K_4, w, <usize>nb * Q6_K_BLOCK_BYTES, nb, row0, row1, act, actBytes, nAct, out, outStride);
}
