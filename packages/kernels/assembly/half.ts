// IEEE half and bfloat16 to float32, branch-free (scales are never Inf or NaN; subnormals come out right because the
// exponent is rebased by a multiplication, not by bit arithmetic).

/** float16 bits → float32. */
// @ts-ignore: decorator
@inline export function f16ToF32(h: u32): f32 {
  const f = reinterpret<f32>((h & 0x7fff) << 13) * 5.192296858534828e33; // 2^112
  return reinterpret<f32>(reinterpret<u32>(f) | ((h & 0x8000) << 16));
}

/** float32 → float16 bits, round to nearest even (for the F16 KV cache). */
// @ts-ignore: decorator
@inline export function f32ToF16(x: f32): u32 {
  const b = reinterpret<u32>(x);
  const sign = (b >> 16) & 0x8000;
  const a = b & 0x7fffffff;
  if (a >= 0x7f800000) return sign | 0x7c00 | (a > 0x7f800000 ? 0x200 : 0); // Inf / NaN
  if (a >= 0x477ff000) return sign | 0x7c00; // overflows half: Inf
  if (a < 0x38800000) {
    // subnormal half (or zero): let the FPU round by adding 0.5 (= 2^-1), whose ulp is 2^-24
    const f = reinterpret<f32>(a) + 0.5;
    return sign | (reinterpret<u32>(f) - 0x3f000000);
  }
  const odd = (a >> 13) & 1;
  return sign | ((a + 0xc8000fff + odd) >> 13);
}

/** bfloat16 bits → float32. */
// @ts-ignore: decorator
@inline export function bf16ToF32(h: u32): f32 {
  return reinterpret<f32>(h << 16);
}
