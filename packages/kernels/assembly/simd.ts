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
 * Writes lane 0 of row k's partial sum to the output slot that row's result will overwrite at the end. The store is an
 * effect V8 keeps in program order, so the next row's activation loads stay after this row's arithmetic. Without it
 * TurboFan schedules every load of a multi-row loop body first and spills what does not fit in x64's 16 vector
 * registers (Q8_0 over four rows: 52 stack accesses per block; with the stores none, 11–15% less CPU time).
 */
// @ts-ignore: decorator
@inline export function pin(o: usize, v: v128): void {
  store<i32>(o, i32x4.extract_lane(v, 0));
}
