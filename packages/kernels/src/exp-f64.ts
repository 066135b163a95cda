// e^x as the training kernels compute it (assembly/ops/exp-f64.ts, where the method is): the same IEEE additions and
// multiplications in the same order, so the same bits, for the host's loops that must agree with those kernels (the
// float64 reference and the f32 loops the kernels replace). 2^k comes from a table made by exact doublings.

const EXP_MAX = 709;
const EXP_MIN = -708;
const INV_LN2 = 1.4426950408889634;
const ROUND = 6755399441055744.0;
const LN2_HI = 6.93147180369123816490e-1;
const LN2_LO = 1.90821492927058770002e-10;
const C = [1, 1, 1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040, 1 / 40320, 1 / 362880, 1 / 3628800, 1 / 39916800, 1 / 479001600, 1 / 6227020800];
const [, , C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13] = C;

/** 2^k for k in [−1022, 1023] at k + 1022. */
const POW2 = (() => {
  const t = new Float64Array(2046);
  t[1022] = 1;
  for (let k = 1; k <= 1023; k++) t[1022 + k] = t[1021 + k] * 2;
  for (let k = 1; k <= 1022; k++) t[1022 - k] = t[1023 - k] / 2;
  return t;
})();

/** e^x: within 5·10^-16 (relative) for x in [−708, 709], +∞ above, 0 below, NaN for NaN. */
export function expF64(x: number): number {
  if (x > EXP_MAX) return Infinity;
  if (x < EXP_MIN) return 0;
  const kr = x * INV_LN2 + ROUND;
  const k = kr - ROUND;
  const r = x - k * LN2_HI - k * LN2_LO;
  const r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
  const s0 = 1 + r + (C2 + C3 * r) * r2;
  const s1 = C4 + C5 * r + (C6 + C7 * r) * r2;
  const s2 = C8 + C9 * r + (C10 + C11 * r) * r2;
  const s3 = C12 + C13 * r;
  return (s0 + s1 * r4 + (s2 + s3 * r4) * r8) * POW2[k + 1022];
}
