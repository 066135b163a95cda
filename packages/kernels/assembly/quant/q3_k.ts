// Q3_K (ggml block_q3_K): super-blocks of 256 values, 110 bytes: u8 hmask[32], u8 qs[64], u8 scales[12], f16 d.
// Sixteen sub-blocks of 16 with 6-bit scales (12 bytes: low 4 bits in bytes 0–7, high 2 bits in bytes 8–11; minus 32).
// Per half h (qs += 32h) and shift j < 4, value 128h + 32j + l (l < 32) is ((qs[l] >> 2j) & 3) − (bit 4h+j of
// hmask[l] ? 0 : 4), sub-block 8h + 2j + l/16;  x = d·(sc − 32)·q.   Activations: Q8_K (as vec_dot_q3_K_q8_K).
import { HALF_TABLE, halfScale, halfToF32 } from './half-scale';
import { matmulRows4 } from './row-tiles';
import { KRows } from './k-rows';
import { hsum, laneOrder, pin } from '../simd';
import { KACT_BYTES, signedScaledDot16, signedScaledX, signedScaledY, splatI16 } from './int-dot';

export const Q3_K_BLOCK_BYTES: usize = 110;

/** The 16 scales (6-bit, before the −32) of the 12 bytes at p, as 16 bytes of a vector. */
// @ts-ignore: decorator
@inline function scalesQ3K(p: usize): v128 {
  const a0 = load<u32>(p), a1 = load<u32>(p, 4), t = load<u32>(p, 8);
  let v = i32x4.splat((a0 & 0x0f0f0f0f) | ((t & 0x03030303) << 4));
  v = i32x4.replace_lane(v, 1, (a1 & 0x0f0f0f0f) | (((t >> 2) & 0x03030303) << 4));
  v = i32x4.replace_lane(v, 2, ((a0 >> 4) & 0x0f0f0f0f) | (((t >> 4) & 0x03030303) << 4));
  return i32x4.replace_lane(v, 3, ((a1 >> 4) & 0x0f0f0f0f) | (((t >> 6) & 0x03030303) << 4));
}

/** Signed byte i of a vector (i a loop index: through a u64 lane, since lane indices must be constants). */
// @ts-ignore: decorator
@inline function scaleAt(v: v128, i: i32): i32 {
  const half = i < 8 ? i64x2.extract_lane(v, 0) : i64x2.extract_lane(v, 1);
  return <i32>(<i8>(half >> (<u64>(i & 7) << 3)));
}

export function dequantQ3_K(src: usize, dst: usize, n: i32): void {
  const nb = n >> 8;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>b * Q3_K_BLOCK_BYTES;
    const d = halfToF32(load<u16>(p, 108));
    const s8 = i8x16.sub(scalesQ3K(p + 96), i8x16.splat(32));
    for (let h = 0; h < 2; h++) {
      const q = p + 32 + (<usize>h << 5);
      for (let j = 0; j < 4; j++) {
        const m = 1 << (4 * h + j);
        const y = dst + (<usize>b << 10) + ((<usize>(128 * h + 32 * j)) << 2);
        for (let half = 0; half < 2; half++) {
          const dl = d * <f32>scaleAt(s8, 8 * h + 2 * j + half);
          for (let l = 16 * half; l < 16 * half + 16; l++) {
            const v = ((<i32>load<u8>(q + l) >> (2 * j)) & 3) - ((<i32>load<u8>(p + l) & m) != 0 ? 0 : 4);
            store<f32>(y + (<usize>l << 2), dl * <f32>v);
          }
        }
      }
    }
  }
}

/** u = q + 4 for 16 values: bits 2j..2j+1 of the 16 bytes qs, plus 4 where bit 0 of hs (hmask shifted down) is set. */
// @ts-ignore: decorator
@inline function unsigned3(qs: v128, j: i32, hs: v128): v128 {
  return v128.or(v128.and(i16x8.shr_u(qs, 2 * j), i8x16.splat(3)), v128.and(i16x8.shl(hs, 2), i8x16.splat(4)));
}

/** Σ sc·bsum for the 16 signed scales s8 and the 16 block sums at bs. */
// @ts-ignore: decorator
@inline function corr(s8: v128, bs: usize): v128 {
  return i32x4.add(
    i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(s8), v128.load(bs)),
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(s8), v128.load(bs, 16)),
  );
}

/**
 * Step 4h + j of a super-block: bits 2j..2j+1 of the half's qs (qa: bytes 0–15, qb: 16–31) and hmask bit `bit` =
 * 4h + j, two sub-blocks scaled by i16 lanes k and k + 1 of sv, against their activations at a; added to isum.
 */
// @ts-ignore: decorator
@inline function stepDot(qa: v128, qb: v128, j: i32, bit: i32, hm0: v128, hm1: v128, sv: v128, k: usize, a: usize, isum: v128): v128 {
  const w0 = unsigned3(qa, j, i16x8.shr_u(hm0, bit)), w1 = unsigned3(qb, j, i16x8.shr_u(hm1, bit));
  const sa = splatI16(sv, k), sb = splatI16(sv, k + 1);
  isum = signedScaledDot16(signedScaledX(w0, sa), signedScaledY(w0, sa), a, isum);
  return signedScaledDot16(signedScaledX(w1, sb), signedScaledY(w1, sb), a + 16 * KACT_BYTES, isum);
}

// Step t = 4h + j (0..7) takes bits 2j..2j+1 of qs[32h..32h+31] and hmask bit t, for sub-blocks 2t (bytes 0–15) and
// 2t+1 (bytes 16–31). The hmask vectors are shifted down one bit a step (16-bit shifts: what crosses into a byte lands
// above bit 0, the only bit read).
// @ts-ignore: decorator
@inline function blockDot(p: usize, xd: f32, bsums: usize, aq: usize): v128 {
  const s8orig = i8x16.sub(scalesQ3K(p + 96), i8x16.splat(32));
  let hm0 = v128.load(p), hm1 = v128.load(p, 16);
  let q0 = v128.load(p, 32), q1 = v128.load(p, 48), q2 = v128.load(p, 64), q3 = v128.load(p, 80);
  if (ASC_FEATURE_RELAXED_SIMD) {
    hm0 = laneOrder(hm0);
    hm1 = laneOrder(hm1);
    q0 = laneOrder(q0);
    q1 = laneOrder(q1);
    q2 = laneOrder(q2);
    q3 = laneOrder(q3);
  }
  // The 16 signed scales widened to i16 once (sub-blocks 0–7, 8–15), each picked by splatI16.
  const sLo = i16x8.extend_low_i8x16_s(s8orig), sHi = i16x8.extend_high_i8x16_s(s8orig);
  // Steps unrolled: constant shift counts (one psrlw each) and scale masks.
  let isum = stepDot(q0, q1, 0, 0, hm0, hm1, sLo, 0, aq, i32x4.splat(0));
  isum = stepDot(q0, q1, 1, 1, hm0, hm1, sLo, 2, aq + 32 * KACT_BYTES, isum);
  isum = stepDot(q0, q1, 2, 2, hm0, hm1, sLo, 4, aq + 64 * KACT_BYTES, isum);
  isum = stepDot(q0, q1, 3, 3, hm0, hm1, sLo, 6, aq + 96 * KACT_BYTES, isum);
  isum = stepDot(q2, q3, 0, 4, hm0, hm1, sHi, 0, aq + 128 * KACT_BYTES, isum);
  isum = stepDot(q2, q3, 1, 5, hm0, hm1, sHi, 2, aq + 160 * KACT_BYTES, isum);
  isum = stepDot(q2, q3, 2, 6, hm0, hm1, sHi, 4, aq + 192 * KACT_BYTES, isum);
  isum = stepDot(q2, q3, 3, 7, hm0, hm1, sHi, 6, aq + 224 * KACT_BYTES, isum);
  isum = i32x4.sub(isum, i32x4.shl(corr(s8orig, bsums), 2));
  return f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(halfScale(load<u16>(p, 108)) * xd));
}

/** Q3_K for the K-quants' rows (k-rows.ts): its super-block and its batch products. */
@final @unmanaged class Q3KBlock {
  // @ts-ignore: decorator
  @inline blockBytes(): usize { return Q3_K_BLOCK_BYTES; }
  // @ts-ignore: decorator
  @inline blockDot(p: usize, xd: f32, bsums: usize, aq: usize): v128 { return blockDot(p, xd, bsums, aq); }
  // @ts-ignore: decorator
  @inline row4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void { rowQ3_K_4(wr, ad, a1, a2, a3, nb, o, o1, o2, o3); }
}

/** rowDotK for four activation rows: each sub-block is unpacked (and widened, for SIMD128) once. */
function rowQ3_K_4(wr: usize, ad: usize, a1: usize, a2: usize, a3: usize, nb: i32, o: usize, o1: usize, o2: usize, o3: usize): void {
  const sumsOff = <usize>nb << 2;
  const aqOff = <usize>nb * 36;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = wr + <usize>b * Q3_K_BLOCK_BYTES;
    const s8orig = i8x16.sub(scalesQ3K(p + 96), i8x16.splat(32));
    const sLo = i16x8.extend_low_i8x16_s(s8orig), sHi = i16x8.extend_high_i8x16_s(s8orig);
    let hm0 = v128.load(p), hm1 = v128.load(p, 16);
    if (ASC_FEATURE_RELAXED_SIMD) {
      hm0 = laneOrder(hm0);
      hm1 = laneOrder(hm1);
    }
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    let at = aqOff + (<usize>b << 8) * KACT_BYTES;
    for (let t = 0; t < 8; t++) {
      const h = t >> 2, j = t & 3;
      let q0 = v128.load(p + 32 + (<usize>h << 5)), q1 = v128.load(p + 48 + (<usize>h << 5));
      if (ASC_FEATURE_RELAXED_SIMD) {
        q0 = laneOrder(q0);
        q1 = laneOrder(q1);
      }
      const sv = h == 0 ? sLo : sHi;
      for (let half = 0; half < 2; half++) {
        const w = unsigned3(half == 0 ? q0 : q1, j, half == 0 ? hm0 : hm1);
        const s16 = splatI16(sv, <usize>((2 * t + half) & 7));
        const x = signedScaledX(w, s16), y = signedScaledY(w, s16);
        const a = at + <usize>half * 16 * KACT_BYTES;
        i0 = signedScaledDot16(x, y, ad + a, i0);
        pin(o, i0);
        i1 = signedScaledDot16(x, y, a1 + a, i1);
        pin(o1, i1);
        i2 = signedScaledDot16(x, y, a2 + a, i2);
        pin(o2, i2);
        i3 = signedScaledDot16(x, y, a3 + a, i3);
      }
      hm0 = i16x8.shr_u(hm0, 1);
      hm1 = i16x8.shr_u(hm1, 1);
      at += 32 * KACT_BYTES;
    }
    const d = v128.load32_splat(HALF_TABLE + (<usize>load<u16>(p, 108) << 2));
    const so = sumsOff + (<usize>b << 5), xo = <usize>b << 2;
    s0 = f32x4.add(s0, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i0, i32x4.shl(corr(s8orig, ad + so), 2))), f32x4.mul(d, v128.load32_splat(ad + xo))));
    pin(o, s0);
    s1 = f32x4.add(s1, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i1, i32x4.shl(corr(s8orig, a1 + so), 2))), f32x4.mul(d, v128.load32_splat(a1 + xo))));
    pin(o1, s1);
    s2 = f32x4.add(s2, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i2, i32x4.shl(corr(s8orig, a2 + so), 2))), f32x4.mul(d, v128.load32_splat(a2 + xo))));
    pin(o2, s2);
    s3 = f32x4.add(s3, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i3, i32x4.shl(corr(s8orig, a3 + so), 2))), f32x4.mul(d, v128.load32_splat(a3 + xo))));
  }
  store<f32>(o, hsum(s0));
  store<f32>(o1, hsum(s1));
  store<f32>(o2, hsum(s2));
  store<f32>(o3, hsum(s3));
}

export function matmulQ3_K(w: usize, cols: i32, row0: i32, row1: i32, act: usize, actBytes: i32, nAct: i32, out: usize, outStride: i32): void {
  const nb = cols >> 8;
  matmulRows4<KRows<Q3KBlock>>(w, <usize>nb * Q3_K_BLOCK_BYTES, nb, row0, row1, act, actBytes, nAct, out, outStride);
}
