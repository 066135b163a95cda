// Small SIMD helpers shared by the kernels.

/** Sum of the four lanes, in a fixed order (0+1)+(2+3) so that a row's result never depends on anything else. */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** int8 × int16 products of 16 bytes of weights with 16 prepared activations, summed pairwise into i32x4. */
// @ts-ignore: decorator
@inline export function dot16(w: v128, a: usize): v128 {
  const lo = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w), v128.load(a));
  return i32x4.add(lo, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w), v128.load(a, 16)));
}

/**
 * The relaxed build's byte order within 16 weights: relaxed_dot_i8x16_i7x16 sums bytes 4k..4k+3 into lane k, where
 * the SIMD128 path (dot16: widen, then i32x4.dot_i16x8_s on each half) sums values 2k, 2k+1, 8+2k, 9+2k. Weights
 * reordered so, against activations prepared in the same order, give every lane the same integer in both builds, so
 * that the float reduction after it — and every output bit — is the same (activation.ts, ACT_Q8_KS and ACT_Q8_1S).
 */
// @ts-ignore: decorator
@inline export function laneOrder(v: v128): v128 {
  // One pshufb: the mask is loaded from static data (V8 rebuilds a v128 constant at every use, 4 instructions for
  // this one), and relaxed_swizzle skips swizzle's out-of-range fix-up (every index here is in range).
  return i8x16.relaxed_swizzle(v, v128.load(LANE_ORDER));
}
export const LANE_ORDER = memory.data<u8>([0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15], 16);

/**
 * Writes lane 0 of row k's partial sum to the output slot that row's result will overwrite at the end. The store is an
 * effect V8 keeps in program order, so the next row's activation loads stay after this row's arithmetic. Without it
 * TurboFan schedules every load of a multi-row loop body first and spills what does not fit in x64's 16 vector
 * registers (Q8_0 over four rows: 52 stack accesses per block; with the stores none, 11–15% less CPU time).
 * The relaxed build skips them: its loops hold fewer widened values, and there the stores cost more than they save
 * (CPU time, 4096 × 4096, 128 rows: Q6_K −11 %, Q8_0 −10 %, Q4_K −8 % without them).
 */
// @ts-ignore: decorator
@inline export function pin(o: usize, v: v128): void {
  if (ASC_FEATURE_RELAXED_SIMD) return;
  store<i32>(o, i32x4.extract_lane(v, 0));
}

// Byte masks kept in static data: V8 rebuilds a v128 constant at each use inside a loop (a 64-bit immediate, a move
// and an unpack), while a load from here is one instruction.
export const MASK_0F = memory.data<u8>([15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15], 16);
export const MASK_30 = memory.data<u8>([48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48], 16);
export const MASK_10 = memory.data<u8>([16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16], 16);
export const MASK_08 = memory.data<u8>([8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8], 16);
