// e^x in f64 for the training kernels, defined so that its TypeScript twin (src/exp-f64.ts) gives the same bits:
// only IEEE additions, multiplications and exact bit moves, in the same order. x = k·ln 2 + r with k the nearest
// integer to x / ln 2 (ties to even, by adding and taking away 1.5 · 2^52) and r reduced in two steps (ln 2 split in
// fdlibm's way, so that k·LN2_HI is exact); e^r by its Taylor polynomial to r^13 (|r| ≤ ln 2 / 2: the next term is
// under 5·10^-18 of the result), in Estrin's order (taylor, below); then times 2^k. Within 5·10^-16 of e^x
// (relative) for x in [−708, 709]; above 709 it is +∞ and below −708 it is 0 (e^x < 2^−1021 there), so that 2^k is
// always a normal number. NaN gives NaN.

const EXP_MAX: f64 = 709;
const EXP_MIN: f64 = -708;
const INV_LN2: f64 = 1.4426950408889634;
const ROUND: f64 = 6755399441055744.0;
const LN2_HI: f64 = 6.93147180369123816490e-01;
const LN2_LO: f64 = 1.90821492927058770002e-10;
const C2: f64 = 1.0 / 2.0;
const C3: f64 = 1.0 / 6.0;
const C4: f64 = 1.0 / 24.0;
const C5: f64 = 1.0 / 120.0;
const C6: f64 = 1.0 / 720.0;
const C7: f64 = 1.0 / 5040.0;
const C8: f64 = 1.0 / 40320.0;
const C9: f64 = 1.0 / 362880.0;
const C10: f64 = 1.0 / 3628800.0;
const C11: f64 = 1.0 / 39916800.0;
const C12: f64 = 1.0 / 479001600.0;
const C13: f64 = 1.0 / 6227020800.0;
/** Added to the bits of ROUND + k, then shifted: the bits of 2^k. */
const SCALE_BIAS: i64 = 1023 - reinterpret<i64>(ROUND);

/**
 * The Taylor polynomial Σ r^j / j! (j ≤ 13) in Estrin's order: pairs c_j + c_(j+1)·r, then those pairs' pairs with
 * r², r⁴ and r⁸ — a chain of four multiply-adds, where Horner's thirteen kept the vector loop waiting on latency.
 */
// @ts-ignore: decorator
@inline function taylor(r: f64): f64 {
  const r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
  const s0 = (1 + r) + (C2 + C3 * r) * r2;
  const s1 = (C4 + C5 * r) + (C6 + C7 * r) * r2;
  const s2 = (C8 + C9 * r) + (C10 + C11 * r) * r2;
  const s3 = C12 + C13 * r;
  return (s0 + s1 * r4) + (s2 + s3 * r4) * r8;
}

/** e^x (above). */
// @ts-ignore: decorator
@inline export function expF64(x: f64): f64 {
  if (x > EXP_MAX) return Infinity;
  if (x < EXP_MIN) return 0;
  const kr = x * INV_LN2 + ROUND;
  const k = kr - ROUND;
  const r = x - k * LN2_HI - k * LN2_LO;
  return taylor(r) * reinterpret<f64>((reinterpret<i64>(kr) + SCALE_BIAS) << 52);
}

// expF64x2's constants as f64 pairs in static data: V8 rebuilds a v128 constant at every use inside a loop (an
// immediate, a move and an unpack), where a load from here is one instruction.
const X2 = memory.data<f64>([
  INV_LN2, INV_LN2, ROUND, ROUND, LN2_HI, LN2_HI, LN2_LO, LN2_LO, 1, 1,
  C2, C2, C3, C3, C4, C4, C5, C5, C6, C6, C7, C7, C8, C8, C9, C9, C10, C10, C11, C11, C12, C12, C13, C13,
  EXP_MIN, EXP_MIN, EXP_MAX, EXP_MAX, Infinity, Infinity,
], 16);

// @ts-ignore: decorator
@inline function c(i: usize): v128 {
  return v128.load(X2 + (i << 4));
}

/** c_j + c_(j+1)·r for the pair of coefficients at i, i + 1 (taylor's first level). */
// @ts-ignore: decorator
@inline function pair(r: v128, i: usize): v128 {
  return f64x2.add(c(i), f64x2.mul(c(i + 1), r));
}

/** a + b·m. */
// @ts-ignore: decorator
@inline function madd(a: v128, b: v128, m: v128): v128 {
  return f64x2.add(a, f64x2.mul(b, m));
}

/** expF64 of both f64 lanes of x. */
// @ts-ignore: decorator
@inline export function expF64x2(x: v128): v128 {
  const kr = f64x2.add(f64x2.mul(x, c(0)), c(1));
  const k = f64x2.sub(kr, c(1));
  const r = f64x2.sub(f64x2.sub(x, f64x2.mul(k, c(2))), f64x2.mul(k, c(3)));
  const r2 = f64x2.mul(r, r), r4 = f64x2.mul(r2, r2), r8 = f64x2.mul(r4, r4);
  const s0 = madd(f64x2.add(c(4), r), pair(r, 5), r2);
  const s1 = madd(pair(r, 7), pair(r, 9), r2);
  const s2 = madd(pair(r, 11), pair(r, 13), r2);
  const p = madd(madd(s0, s1, r4), madd(s2, pair(r, 15), r4), r8);
  const e = f64x2.mul(p, i64x2.shl(i64x2.add(kr, i64x2.splat(SCALE_BIAS)), 52));
  const low = v128.bitselect(i64x2.splat(0), e, f64x2.lt(x, c(17)));
  return v128.bitselect(c(19), low, f64x2.gt(x, c(18)));
}

/** e^x of n f64 values at src into dst (which may be src): the kernel the tests hold to the TypeScript twin. */
export function expF64Array(src: usize, dst: usize, n: i32): void {
  let i = 0;
  for (; i + 2 <= n; i += 2) v128.store(dst + (<usize>i << 3), expF64x2(v128.load(src + (<usize>i << 3))));
  for (; i < n; i++) store<f64>(dst + (<usize>i << 3), expF64(load<f64>(src + (<usize>i << 3))));
}
