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
