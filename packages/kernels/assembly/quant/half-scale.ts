// f16 block scales to f32 without ever computing on an f32 subnormal. Small f16 scales are the rule, not the
// exception (a Q6_K super-block scale of typical weights is ~2⁻¹⁶, below the f16 normal range), and the multiply
// by 2¹¹² that ../half.ts uses to rebase the exponent then takes a subnormal operand: Intel cores run that through a
// microcode assist, measured here making Q6_K and Q5_K products 3× slower. Exact for every finite half.

/** float16 bits → float32 (finite values; subnormal halves come out exactly, via an integer conversion). */
// @ts-ignore: decorator
@inline export function halfToF32(h: u32): f32 {
  const normal = reinterpret<f32>(((h & 0x7fff) << 13) + 0x38000000);
  const sub = <f32>(h & 0x3ff) * 5.960464477539063e-8; // 2^-24
  const mag = select<f32>(normal, sub, (h & 0x7c00) != 0);
  return reinterpret<f32>(reinterpret<u32>(mag) | ((h & 0x8000) << 16));
}

/** Four float16 values (in the low 16 bits of each i32 lane) → f32x4, the same way. */
// @ts-ignore: decorator
@inline export function halfToF32x4(h: v128): v128 {
  const normal = i32x4.add(i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13), i32x4.splat(0x38000000));
  const sub = f32x4.mul(f32x4.convert_i32x4_s(v128.and(h, i32x4.splat(0x3ff))), f32x4.splat(5.960464477539063e-8));
  const isSub = i32x4.eq(v128.and(h, i32x4.splat(0x7c00)), i32x4.splat(0));
  return v128.or(v128.bitselect(sub, normal, isSub), i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

/**
 * The same conversion as one load: f32 values of all 65536 halves, at HALF_TABLE in every memory (below the static
 * data: the build's --memoryBase leaves [1024, 1024 + 256 KiB) to it). A Q8_0 block pays for its scale with one
 * load instead of ten instructions; the few hundred scales a model's blocks use stay in L1.
 */
export const HALF_TABLE: usize = 1024;
export const HALF_TABLE_BYTES: usize = 65536 * 4;

// @ts-ignore: decorator
@inline export function halfScale(h: u32): f32 {
  return load<f32>(HALF_TABLE + (<usize>h << 2));
}

/** Fills the table (each instantiation does; the values never change, so a second fill is harmless). */
export function initHalfTable(): void {
  for (let h: u32 = 0; h < 65536; h++) store<f32>(HALF_TABLE + (<usize>h << 2), halfToF32(h));
}
