import { f16ToF32, f32ToF16 } from './half';
import { LANE_ORDER, laneOrder } from './simd';
import { pairOrderOffset } from './quant/int-dot';
// Activations are quantised once per row before an integer product, as llama.cpp does, and kept widened to int16 so
// that the inner loops (run once per weight row) do not widen them again.
//
// Q8 activation row (Q8_0, Q4_0, Q5_0 weights, both builds): nb = cols / 32 blocks;
//   [nb × f32 scale d][nb × 32 × i16 q]   x ≈ d·q, d = max|x| / 127 per block rounded to f16, q = round(x·127/max|x|)
//   (ggml's quantize_row_q8_0: block_q8_0.d is half precision; with an f32 d the logits drift ~0.1 from llama.cpp's).
// Q8_1 activation row (Q4_1, Q5_1 weights: their blocks carry an offset m, whose product needs Σx):
//   [nb × f32 d][nb × f32 s][nb × 32 × i16 q]   d as Q8, s = d·Σq rounded to f16 (ggml's block_q8_1.s).
// Q8_K activation row (K-quant weights): nb = cols / 256 super-blocks;
//   [nb × f32 d][nb × 16 × i16 bsums][nb × 256 × i16 q]   q = round(x·127/max|x|) per 256 values, d = 1/(127/max|x|)
//   in f32, bsums[k] = Σ q[16k..16k+15]
//   (ggml's block_q8_K; its sums let the kernels apply the weights' per-sub-block minimums without touching q).
//
// The relaxed build (int-dot.ts) takes the same q as int8, each 16 values in laneOrder (simd.ts: bytes 4k..4k+3 hold
// values 2k, 2k+1, 8+2k, 9+2k):
// Q8_KS activation row (Q2_K, Q3_K weights): [nb × f32 d][nb × 16 × i16 bsums][nb × 256 × i8 q]
// Q8_KN activation row (Q4_K, Q5_K, Q6_K weights): Q8_KS with q in natural order — their products sum each run's
//   products over whole groups of lanes (k4-family.ts), so no lane order is needed.
// Q8_KP activation row (Q4_K, Q5_K weights): Q8_KN whose sums slot holds instead, in its first 16 bytes, the sum of
//   each 32 values (a sub-block) as i16 in the order 0, 4, 1, 5, 2, 6, 3, 7 — so that one pmaddwd meets them with
//   the weights' minimums (k-scales.ts's minsDotP); its last 16 bytes are unused.
// Q8_KN and Q8_KP rows end with the same q again in run-pair order, [nb × 256 × i8], for the batch products
//   (int-dot.ts's crossedTerm): in each 64 values, runs of 16 starting at o and o + 32 (o = 0, 16) are paired, and
//   their 32 bytes hold values o+0..3, o+8..11, o+32..35, o+40..43, then o+4..7, o+12..15, o+36..39, o+44..47. A
//   product that shuffles each pair of weight runs once the same way gets pairTerm's lanes from i16 pair sums with
//   no shuffle per activation row.
// Q8_1S activation row (Q4_1, Q5_1 weights): [nb × f32 d][nb × f32 s][nb × 32 × i8 q]
// Q8_LS activation row (Q4_0, Q5_0 weights): [nb × f32 d][nb × 4 × i32 lane sums][nb × 32 × i8 q]   d and q as Q8;
//   lane sum k of a block is Σ of the values the relaxed dot adds into lane k (2k, 2k+1, 8+2k, 9+2k of each 16), so
//   a product can take its weights' offset off per lane (q8-lane-sum-rows.ts).

export const ACT_F32: i32 = 0;
export const ACT_Q8: i32 = 1;
export const ACT_Q8_1: i32 = 2;
export const ACT_Q8_K: i32 = 3;
// 4 was Q8S (Q8_0's activations split by sign for the relaxed build), retired: signed weights widen in both builds.
export const ACT_Q8_KS: i32 = 5;
export const ACT_Q8_1S: i32 = 6;
export const ACT_Q8_KN: i32 = 7;
export const ACT_Q8_LS: i32 = 8;
export const ACT_Q8_KP: i32 = 9;

/** Bytes of one prepared activation row of `cols` values in format `fmt`. */
export function actRowBytes(fmt: i32, cols: i32): i32 {
  if (fmt == ACT_Q8) return (cols >> 5) * (4 + 64);
  if (fmt == ACT_Q8_1) return (cols >> 5) * (8 + 64);
  if (fmt == ACT_Q8_K) return (cols >> 8) * (4 + 32 + 512);
  if (fmt == ACT_Q8_KS) return (cols >> 8) * (4 + 32 + 256);
  if (fmt == ACT_Q8_KN || fmt == ACT_Q8_KP) return (cols >> 8) * (4 + 32 + 256 + 256);
  if (fmt == ACT_Q8_1S) return (cols >> 5) * (8 + 32);
  if (fmt == ACT_Q8_LS) return (cols >> 5) * (4 + 16 + 32);
  return cols << 2;
}

/** 16 bytes in laneOrder (simd.ts), in either build (the SIMD128 one has no relaxed swizzle). */
// @ts-ignore: decorator
@inline function inLaneOrder(v: v128): v128 {
  return ASC_FEATURE_RELAXED_SIMD ? laneOrder(v) : i8x16.swizzle(v, v128.load(LANE_ORDER));
}

/** [x0 + x1, x2 + x3, y0 + y1, y2 + y3]. */
// @ts-ignore: decorator
@inline function pairSums(x: v128, y: v128): v128 {
  return i32x4.add(i32x4.shuffle(x, y, 0, 2, 4, 6), i32x4.shuffle(x, y, 1, 3, 5, 7));
}

/**
 * Q8_KP: a super-block's sixteen sums of 16 at s turned, in place, into its eight sums of 32 in the order 0, 4, 1, 5,
 * 2, 6, 3, 7 (each fits i16: at most 32 · 127).
 */
// @ts-ignore: decorator
@inline function subBlockSums(s: usize): void {
  const e0 = i32x4.extadd_pairwise_i16x8_s(v128.load(s)), e1 = i32x4.extadd_pairwise_i16x8_s(v128.load(s, 16));
  v128.store(s, i16x8.narrow_i32x4_s(i32x4.shuffle(e0, e1, 0, 4, 1, 5), i32x4.shuffle(e0, e1, 2, 6, 3, 7)));
}

/** The 256 q at q (natural order) again at dst in run-pair order (see the file's head). */
// @ts-ignore: decorator
@inline function storeRunPairOrder(q: usize, dst: usize): void {
  for (let c: usize = 0; c < 256; c += 64) {
    const n0 = v128.load(q + c), n1 = v128.load(q + c, 16), n2 = v128.load(q + c, 32), n3 = v128.load(q + c, 48);
    v128.store(dst + c, i32x4.shuffle(n0, n2, 0, 2, 4, 6));
    v128.store(dst + c, i32x4.shuffle(n0, n2, 1, 3, 5, 7), 16);
    v128.store(dst + c, i32x4.shuffle(n1, n3, 0, 2, 4, 6), 32);
    v128.store(dst + c, i32x4.shuffle(n1, n3, 1, 3, 5, 7), 48);
  }
}

// How quantizeBlock stores q: int16 in order, int8 in laneOrder, or int8 in order.
const STORE_I16: i32 = 0;
const STORE_I8: i32 = 1;
const STORE_I8N: i32 = 3;

/**
 * Quantises n values (a multiple of 16) at p to q with one scale, rounding half to even as ggml's SIMD paths do;
 * returns the scale as ggml keeps it — half precision (`halfScale`, block_q8_0/q8_1) or 1/(127/max|x|) in f32
 * (block_q8_K). Σq goes to `lastSum`, the unrounded max|x|/127 to `lastScale`; with `sums` set, each group of 16's
 * Σq as i16 there; with `laneSums` set, the block's Σq per relaxed-dot lane (laneOrder's groups) as i32x4 there. Vector code, lane for lane the scalar arithmetic (max, one f32 multiply, round half to even).
 */
let lastSum: i32 = 0;
let lastScale: f32 = 0;
// @ts-ignore: decorator
@inline function quantizeBlock(p: usize, n: i32, q: usize, halfScale: bool, layout: i32 = STORE_I16, sums: usize = 0, laneSums: usize = 0): f32 {
  let m = f32x4.splat(0);
  for (let j = 0; j < n; j += 4) m = f32x4.max(m, f32x4.abs(v128.load(p + (<usize>j << 2))));
  const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
  const id: f32 = amax != 0 ? <f32>127 / amax : 0;
  lastScale = amax / 127;
  const d: f32 = halfScale ? f16ToF32(f32ToF16(lastScale)) : id != 0 ? <f32>1 / id : 0;
  const idv = f32x4.splat(id);
  let total = i32x4.splat(0);
  let lanes = i32x4.splat(0);
  for (let g = 0; g < n; g += 16) {
    const x = p + (<usize>g << 2);
    const r0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(x), idv)));
    const r1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(x, 16), idv)));
    const r2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(x, 32), idv)));
    const r3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(x, 48), idv)));
    const lo = i16x8.narrow_i32x4_s(r0, r1), hi = i16x8.narrow_i32x4_s(r2, r3);
    const gsum = i32x4.add(i32x4.add(r0, r1), i32x4.add(r2, r3));
    total = i32x4.add(total, gsum);
    // Lane k of laneOrder holds values 2k, 2k+1 (of r0, r1) and 8+2k, 9+2k (of r2, r3): pairwise sums.
    if (laneSums != 0) lanes = i32x4.add(lanes, i32x4.add(pairSums(r0, r1), pairSums(r2, r3)));
    if (sums != 0) store<i16>(sums + (<usize>(g >> 4) << 1), <i16>(i32x4.extract_lane(gsum, 0) + i32x4.extract_lane(gsum, 1) + i32x4.extract_lane(gsum, 2) + i32x4.extract_lane(gsum, 3)));
    if (layout == STORE_I16) {
      v128.store(q + (<usize>g << 1), lo);
      v128.store(q + (<usize>g << 1), hi, 16);
    } else if (layout == STORE_I8N) {
      v128.store(q + <usize>g, i8x16.narrow_i16x8_s(lo, hi));
    } else {
      v128.store(q + <usize>g, inLaneOrder(i8x16.narrow_i16x8_s(lo, hi)));
    }
  }
  if (laneSums != 0) v128.store(laneSums, lanes);
  lastSum = i32x4.extract_lane(total, 0) + i32x4.extract_lane(total, 1) + i32x4.extract_lane(total, 2) + i32x4.extract_lane(total, 3);
  return d;
}

/**
 * Quantises `rows` rows of `cols` f32 values at x into activation format fmt at dst. fmt is a constant at every call
 * (the exported functions below), so the inlined body folds to one loop per format with no run-time branch.
 */
// @ts-ignore: decorator
@inline function quantizeRows(fmt: i32, x: usize, rows: i32, cols: i32, dst: usize): void {
  const superBlocks = fmt == ACT_Q8_K || fmt == ACT_Q8_KS || fmt == ACT_Q8_KN || fmt == ACT_Q8_KP;
  const withSum = fmt == ACT_Q8_1 || fmt == ACT_Q8_1S;
  const withLaneSums = fmt == ACT_Q8_LS;
  const layout = fmt == ACT_Q8_1S || fmt == ACT_Q8_KS || fmt == ACT_Q8_LS ? STORE_I8 : fmt == ACT_Q8_KN || fmt == ACT_Q8_KP ? STORE_I8N : STORE_I16;
  const n = superBlocks ? 256 : 32;
  const qBytes = <usize>(layout == STORE_I8 || layout == STORE_I8N ? n : 2 * n);
  const nb = superBlocks ? cols >> 8 : cols >> 5;
  const rowBytes = <usize>actRowBytes(fmt, cols);
  for (let r = 0; r < rows; r++) {
    const src = x + ((<usize>r * <usize>cols) << 2);
    const out = dst + <usize>r * rowBytes;
    const sums = out + (<usize>nb << 2);
    const qs = superBlocks ? out + <usize>nb * 36 : withLaneSums ? out + <usize>nb * 20 : out + (<usize>nb << (withSum ? 3 : 2));
    for (let b = 0; b < nb; b++) {
      const blockSums = superBlocks ? sums + (<usize>b << 5) : 0;
      const d = quantizeBlock(src + <usize>b * <usize>n * 4, n, qs + <usize>b * qBytes, !superBlocks, layout, blockSums, withLaneSums ? sums + (<usize>b << 4) : 0);
      store<f32>(out + (<usize>b << 2), d);
      if (fmt == ACT_Q8_KP) subBlockSums(blockSums);
      if (fmt == ACT_Q8_KN || fmt == ACT_Q8_KP) storeRunPairOrder(qs + <usize>b * qBytes, out + pairOrderOffset(nb) + (<usize>b << 8));
      if (withSum) store<f32>(out + ((<usize>nb + <usize>b) << 2), f16ToF32(f32ToF16(lastScale * <f32>lastSum)));
    }
  }
}

/** Quantises `rows` rows of `cols` f32 values at x into the Q8 activation layout at dst. */
export function quantizeQ8(x: usize, rows: i32, cols: i32, dst: usize): void {
  quantizeRows(ACT_Q8, x, rows, cols, dst);
}

/** Quantises `rows` rows into the Q8_1 activation layout at dst. */
export function quantizeQ8_1(x: usize, rows: i32, cols: i32, dst: usize): void {
  quantizeRows(ACT_Q8_1, x, rows, cols, dst);
}

/** Quantises `rows` rows into the relaxed build's Q8_1S layout at dst (the same q, d and s as quantizeQ8_1). */
export function quantizeQ8_1S(x: usize, rows: i32, cols: i32, dst: usize): void {
  quantizeRows(ACT_Q8_1S, x, rows, cols, dst);
}

/** Quantises `rows` rows (cols a multiple of 256) into the Q8_K activation layout at dst. */
export function quantizeQ8K(x: usize, rows: i32, cols: i32, dst: usize): void {
  quantizeRows(ACT_Q8_K, x, rows, cols, dst);
}

/** Quantises `rows` rows (cols a multiple of 256) into the relaxed build's Q8_KS layout at dst (the same q and sums). */
export function quantizeQ8KS(x: usize, rows: i32, cols: i32, dst: usize): void {
  quantizeRows(ACT_Q8_KS, x, rows, cols, dst);
}

/** Quantises `rows` rows (cols a multiple of 256) into the relaxed build's Q8_KN layout at dst (Q8_KS in natural order). */
export function quantizeQ8KN(x: usize, rows: i32, cols: i32, dst: usize): void {
  quantizeRows(ACT_Q8_KN, x, rows, cols, dst);
}

/** Quantises `rows` rows (cols a multiple of 256) into the relaxed build's Q8_KP layout at dst (Q8_KN with sums of 32). */
export function quantizeQ8KP(x: usize, rows: i32, cols: i32, dst: usize): void {
  quantizeRows(ACT_Q8_KP, x, rows, cols, dst);
}

/** Quantises `rows` rows of `cols` f32 values at x into the Q8_LS activation layout at dst (relaxed build). */
export function quantizeQ8LS(x: usize, rows: i32, cols: i32, dst: usize): void {
  quantizeRows(ACT_Q8_LS, x, rows, cols, dst);
}
