// Integer dot products of unpacked weight bytes with prepared activations, shared by the quantised types.
// SIMD128 build: int16 activations, weights widened to int16, i32x4.dot_i16x8_s (8 multiply-adds per instruction).
// Relaxed build (ASC_FEATURE_RELAXED_SIMD): int8 activations and i32x4.relaxed_dot_i8x16_i7x16_add_s (16 per
// instruction; vpdpbusd where V8 sees AVX-VNNI, else vpmaddubsw + vpmaddwd). Its second operand must stay in 0..127
// for every lowering to agree, so unsigned weights (2- to 6-bit) go there against signed activations (udot*). Signed
// weights (Q8_0, Q4_0, Q5_0) take the widening product in both builds (dotWide, sdot32): the relaxed one needed the
// activations split by sign, two relaxed products per 16 values (each vpmaddubsw + vpmaddwd where V8 lowers it so,
// as on this machine) against two pmaddwd on weights widened once: 28–30 % slower for one row, 35–42 % for batches
// (Q8_0, CPU time). Both builds sum the same products per lane (weights in laneOrder), so they give
// the same bits — or, for Q4_K, Q5_K and Q6_K, the same products per half of a run, which needs no order at all
// (pairTerm below).
import { dot16, MASK_0F } from '../simd';

/** Σ w·a over 32 values: w as two i8x16 vectors (values 0–15 and 16–31), a 32 × i16 at a; i32x4 partial sums. */
// @ts-ignore: decorator
@inline export function dot32(lo: v128, hi: v128, a: usize): v128 {
  return i32x4.add(dot16(lo, a), dot16(hi, a + 32));
}

/** Low nibbles of 16 bytes. */
// @ts-ignore: decorator
@inline export function nibLo(v: v128): v128 {
  return v128.and(v, v128.load(MASK_0F));
}

/** High nibbles of 16 bytes (a 16-bit shift then a mask: x86 has no byte shift). */
// @ts-ignore: decorator
@inline export function nibHi(v: v128): v128 {
  return v128.and(i16x8.shr_u(v, 4), v128.load(MASK_0F));
}

/** Σ over 32 values of widened weights (w0..w3: 4 × 8 × i16) with 32 activations at a. */
// @ts-ignore: decorator
@inline export function dotWide(w0: v128, w1: v128, w2: v128, w3: v128, a: usize): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(a)), i32x4.dot_i16x8_s(w1, v128.load(a, 16))),
    i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(a, 32)), i32x4.dot_i16x8_s(w3, v128.load(a, 48))),
  );
}

/** Σ over 16 values of widened weights (lo, hi: 2 × 8 × i16) with 16 activations at a. */
// @ts-ignore: decorator
@inline export function dotWide16(lo: v128, hi: v128, a: usize): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(lo, v128.load(a)), i32x4.dot_i16x8_s(hi, v128.load(a, 16)));
}

/** Relaxed build: Σ w·a over 16 values, w unsigned (0..127) in laneOrder, a 16 × i8 at a (ACT_Q8_KS), added to acc. */
// @ts-ignore: decorator
@inline export function udot16(w: v128, a: usize, acc: v128): v128 {
  return i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(a), w, acc);
}

/** Relaxed build: Σ w·a over 32 unsigned weights (lo: values 0–15, hi: 16–31, laneOrder) with 32 × i8 at a. */
// @ts-ignore: decorator
@inline export function udot32(lo: v128, hi: v128, a: usize): v128 {
  return udot16(hi, a + 16, udot16(lo, a, i32x4.splat(0)));
}


/**
 * Σ w·a over 32 unsigned weights as this build unpacks them: widened to i16 (w0..w3, values 0–7, 8–15, 16–23, 24–31)
 * against ACT_Q8_K for SIMD128; bytes in laneOrder (w0: values 0–15, w1: 16–31) against ACT_Q8_KS or Q8_1S for
 * relaxed, in P's shape (udot32Of).
 */
// @ts-ignore: decorator
@inline export function unpackedUDot32<P>(w0: v128, w1: v128, w2: v128, w3: v128, a: usize): v128 {
  return ASC_FEATURE_RELAXED_SIMD ? udot32Of<P>(w0, w1, a) : dotWide(w0, w1, w2, w3, a);
}

/**
 * Sub-block weights (bytes) times their scale (at most 63 each), for scaledUDot32Of or scaledUDot16. The relaxed
 * build multiplies the 16 bytes in 16-bit lanes: each byte's product stays under 256, so no carry crosses into its
 * neighbour, and under 128, so the scaled weights are still a valid i7 operand. SIMD128 widens first (values 0–7;
 * scaledHi: 8–15).
 */
// @ts-ignore: decorator
@inline export function scaledLo(w: v128, s16: v128): v128 {
  return i16x8.mul(ASC_FEATURE_RELAXED_SIMD ? w : i16x8.extend_low_i8x16_u(w), s16);
}
// @ts-ignore: decorator
@inline export function scaledHi(w: v128, s16: v128): v128 {
  return i16x8.mul(i16x8.extend_high_i8x16_u(w), s16);
}

/** SIMD128: acc + Σ sc·w·a over 16 weights scaled by scaledLo/scaledHi, against ACT_Q8_K activations at a. */
// @ts-ignore: decorator
@inline export function scaledUDot16(lo: v128, hi: v128, a: usize, acc: v128): v128 {
  return i32x4.add(acc, dotWide16(lo, hi, a));
}

/** Bytes of one prepared K-quant activation value in this build: i16 (ACT_Q8_K) or i8 (relaxed ACT_Q8_KS). */
export const KACT_BYTES: usize = ASC_FEATURE_RELAXED_SIMD ? 1 : 2;


/** Σ w·a over 32 signed weights (lo: values 0–15, hi: 16–31, in order) with an ACT_Q8 block (32 × i16) at a, either build. */
// @ts-ignore: decorator
@inline export function sdot32(lo: v128, hi: v128, a: usize): v128 {
  return dot32(lo, hi, a);
}


// Pairing by scale, for the K-quants whose products reorder no bytes (k4-family.ts, q6_k.ts): a run's sum is kept in
// two halves, lanes 0+1 and 2+3 of an i32x4, and two runs meet their scales in one i32x4.dot_i16x8_s (pmaddwd: the
// scale multiply and the pairing in one instruction).

/** [sx·(x0 + x1), sx·(x2 + x3), sy·(y0 + y1), sy·(y2 + y3)] for runs x, y and scales sp = [sx ×4, sy ×4] as i16 (every lane of x and y fits i16). */
// @ts-ignore: decorator
@inline export function pairTerm(x: v128, y: v128, sp: v128): v128 {
  return i32x4.dot_i16x8_s(i16x8.narrow_i32x4_s(x, y), sp);
}

/**
 * Relaxed build: 16 unsigned weights w (bytes in order) against 16 i8 activations at a as i16x8 pair sums (lane i:
 * values 2i and 2i + 1), with i16x8.relaxed_dot_i8x16_i7x16_s — one vpmaddubsw on x64, where the i32x4 form takes a
 * vpmaddwd and an add more unless V8 sees AVX-VNNI. Exact: |lane| ≤ 2 · 63 · 127.
 */
// @ts-ignore: decorator
@inline export function pairSums16(w: v128, a: usize): v128 {
  return i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(a), w);
}

/**
 * pairTerm of two runs given as i16 pair sums tx, ty (pairSums16, or two of them added): run x's half sums are
 * tx's lanes 0–3 and 4–7, so one add of two 32-bit-lane shuffles leaves [x half₀ in two i16, x half₁ …, y …] pairs
 * that pmaddwd sums and scales — the integers pairTerm gives (every i16 here ≤ 2 · 2 · 63 · 127 < 2¹⁵).
 */
// @ts-ignore: decorator
@inline export function pairTermOfPairs(tx: v128, ty: v128, sp: v128): v128 {
  return i32x4.dot_i16x8_s(i16x8.add(i32x4.shuffle(tx, ty, 0, 2, 4, 6), i32x4.shuffle(tx, ty, 1, 3, 5, 7)), sp);
}

/** Bytes of a Q8_KN or Q8_KP row (activation.ts) before its run-pair copy of q; super-block b's is 256·b after. */
// @ts-ignore: decorator
@inline export function pairOrderOffset(nb: i32): usize {
  return <usize>nb * (4 + 32 + 256);
}

/**
 * Relaxed build, batch products: two runs x, y of 16 unsigned weights (bytes in order) crossed as activation.ts's
 * run-pair order has their activations — [x 0–3, x 8–11, y 0–3, y 8–11] (crossLo) and [x 4–7, x 12–15, y 4–7,
 * y 12–15] (crossHi): one shufps each, once for every activation row of the batch.
 */
// @ts-ignore: decorator
@inline export function crossLo(x: v128, y: v128): v128 {
  return i32x4.shuffle(x, y, 0, 2, 4, 6);
}
// @ts-ignore: decorator
@inline export function crossHi(x: v128, y: v128): v128 {
  return i32x4.shuffle(x, y, 1, 3, 5, 7);
}

/**
 * The i16 pair sums of crossed weights c0, c1 against run-pair-ordered activations at a (16 bytes each): lanes 0–1
 * hold run x's values 0–7, lanes 2–3 its values 8–15, lanes 4–7 run y's the same — so one pmaddwd by the scales
 * gives pairTerm's lanes, where pairTermOfPairs first shuffles each activation row's sums.
 */
// @ts-ignore: decorator
@inline export function crossedSums(c0: v128, c1: v128, a: usize): v128 {
  return i16x8.add(pairSums16(c0, a), pairSums16(c1, a + 16));
}

/** Bytes of v picked by an in-range index vector (one pshufb in the relaxed build). */
// @ts-ignore: decorator
@inline export function i16Pick(v: v128, idx: v128): v128 {
  return ASC_FEATURE_RELAXED_SIMD ? i8x16.relaxed_swizzle(v, idx) : i8x16.swizzle(v, idx);
}

/**
 * SIMD128: 16 unsigned weights widened to i16 (lo: values 0–7, hi: 8–15) against 16 ACT_Q8_K activations at a, as
 * i32x4 whose lanes 0+1 sum values 0–7 and lanes 2+3 values 8–15 — what the relaxed dot over the bytes in order gives.
 */
// @ts-ignore: decorator
@inline export function wideRunSums16(lo: v128, hi: v128, a: usize): v128 {
  const x = i32x4.dot_i16x8_s(lo, v128.load(a)), y = i32x4.dot_i16x8_s(hi, v128.load(a, 16));
  return i32x4.add(i32x4.shuffle(x, y, 0, 1, 4, 5), i32x4.shuffle(x, y, 2, 3, 6, 7));
}

/** SIMD128: 16 unsigned weights (bytes in order) widened, against ACT_Q8_K activations at a, summed in halves as wideRunSums16. */
// @ts-ignore: decorator
@inline export function runSums16(w: v128, a: usize): v128 {
  return wideRunSums16(i16x8.extend_low_i8x16_u(w), i16x8.extend_high_i8x16_u(w), a);
}

/** Masks for splatI16: lane k's two bytes in every lane, k = 0..7. */
const SPLAT16 = memory.data<u8>([
  0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
  2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
  4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5,
  6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7,
  8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9,
  10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11,
  12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13,
  14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15,
], 16);

/** i16 lane k (0..7) of v in every lane: one pshufb (a sub-block's scale, from the scales widened once a block). */
// @ts-ignore: decorator
@inline export function splatI16(v: v128, k: usize): v128 {
  return i16Pick(v, v128.load(SPLAT16 + (k << 4)));
}

/**
 * Operands for signedScaledDot16: 16 unsigned weights w (≤ 127) and a signed i16 scale s16 (|scale·pair sum| < 2¹⁵
 * where the relaxed build pairs them). The relaxed build keeps both as they are (x = w, y = s16); SIMD128 widens the
 * weights and scales them at once (x, y = the scaled i16 halves).
 */
// @ts-ignore: decorator
@inline export function signedScaledX(w: v128, s16: v128): v128 {
  return ASC_FEATURE_RELAXED_SIMD ? w : i16x8.mul(i16x8.extend_low_i8x16_u(w), s16);
}
// @ts-ignore: decorator
@inline export function signedScaledY(w: v128, s16: v128): v128 {
  return ASC_FEATURE_RELAXED_SIMD ? s16 : i16x8.mul(i16x8.extend_high_i8x16_u(w), s16);
}

/**
 * acc + scale · Σ w·a over 16 unsigned weights with a scale of either sign (operands from signedScaledX/Y), against
 * this build's K-quant activations at a: per lane the integers of scale × unpackedUDot16. The relaxed build takes
 * the i16 pair sums (vpmaddubsw) and lets one pmaddwd add the pairs and apply the scale; SIMD128 multiplies scaled
 * weights. Neither needs a 32-bit multiply.
 */
// @ts-ignore: decorator
@inline export function signedScaledDot16(x: v128, y: v128, a: usize, acc: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i32x4.add(acc, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(a), x), y));
  return i32x4.add(acc, dotWide16(x, y, a));
}

const ONES_16 = memory.data<u16>([1, 1, 1, 1, 1, 1, 1, 1], 16);

/**
 * Relaxed build: acc plus the lanes of two scaledUDot16 over consecutive sub-blocks (scaled weights x0 against the
 * activations at a, x1 at a + 16; scale · weight ≤ 63), in P's shape (dot-lowering.ts). The paired shape adds the
 * two vpmaddubsw pair sums as i16 (at most 2 · 2 · 63 · 128 < 2¹⁵) and sums each lane's pairs with one pmaddwd by
 * ones loaded from memory, where V8's own lowering of each relaxed i32 dot rebuilds that vector of ones.
 */
// @ts-ignore: decorator
@inline export function scaledUDot32Of<P>(x0: v128, x1: v128, a: usize, acc: v128): v128 {
  if (!changetype<P>(0).paired()) return i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(a, 16), x1, i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(a), x0, acc));
  return i32x4.add(acc, i32x4.dot_i16x8_s(i16x8.add(pairSums16(x0, a), pairSums16(x1, a + 16)), v128.load(ONES_16)));
}

/**
 * Relaxed build: udot32's lanes (32 unsigned weights ≤ 31 in laneOrder against 32 i8 activations at a) in the shape
 * of P (dot-lowering.ts). The paired shape adds the two halves' i16 pair sums (vpmaddubsw each; at most
 * 4 · 31 · 128 < 2¹⁵ a lane) and sums each lane's pairs with one pmaddwd by ones: four instructions where V8 lowers
 * the two relaxed i32 dots to six.
 */
// @ts-ignore: decorator
@inline export function udot32Of<P>(lo: v128, hi: v128, a: usize): v128 {
  if (!changetype<P>(0).paired()) return udot32(lo, hi, a);
  return i32x4.dot_i16x8_s(i16x8.add(pairSums16(lo, a), pairSums16(hi, a + 16)), v128.load(ONES_16));
}
