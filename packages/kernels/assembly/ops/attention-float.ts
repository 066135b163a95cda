// Attention over an F32 or F16 KV cache (attention.ts has the kernel, its order of sums and the Q8_0 cache): one head,
// or two heads that share a KV head (grouped-query attention), whose keys and values are then loaded and converted
// once for both. A score or an output value is summed in the same order either way, so a head's bits never depend on
// whether it was computed beside another.
import { hsum } from '../simd';
import { softmax, storeScore } from './attention-softmax';

// Four f16 values → f32 lanes, as the loops below use them: sign-extended to 32 bits and shifted so that the exponent
// and mantissa sit where f32's do, the three sign copies above the exponent cleared. That is the value times 2^-112
// (the exponent not rebased); the loops fold the 2^112 into a factor they have once per head or position (the query,
// the attention weight) instead of one multiply per four values, with the same products: a power of two only moves
// the exponent. A subnormal half gives an f32 subnormal here, which costs an Intel core a microcode assist in the
// multiply; cached K and V values are that small (|x| < 2^-14) about once in 10⁴ (the 300M file), so an exact
// select-based conversion does not pay. The mask is loaded once per head: V8 rebuilds a v128 constant at every use.
const HALF_BITS_MASK = memory.data<u32>([0x8fffffff, 0x8fffffff, 0x8fffffff, 0x8fffffff], 16);
const TWO_POW_112: f32 = 5.192296858534828e33;

/** Four cached values at p: an F32 cache's as they are (T = f32); an F16 cache's times 2^-112 (T = u16). */
// @ts-ignore: decorator
@inline function load4<T>(p: usize, mask: v128): v128 {
  if (sizeof<T>() == 4) return v128.load(p);
  return v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(v128.load64_zero(p)), 13), mask);
}

/**
 * For an F16 cache, the factor 2^(112 − e) the query takes and the 2^e a score takes back (both exact): e = 0 unless
 * the head's |q| reaches 2^15, where q · 2^112 would overflow. Returns 2^e; the query factor is 2^112 / 2^e.
 */
// @ts-ignore: decorator
@inline function queryExcess(qh: usize, headDim: i32): f32 {
  let m = f32x4.splat(0);
  for (let d = 0; d < headDim; d += 4) m = f32x4.max(m, f32x4.abs(v128.load(qh + (<usize>d << 2))));
  const mx = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
  const e = <i32>((reinterpret<u32>(mx) >> 23) & 0xff) - 127 - 13;
  return e > 0 ? reinterpret<f32>(<u32>(127 + min(e, 100)) << 23) : 1;
}

// One head over an F32 (T = f32) or F16 (T = u16) cache.
// @ts-ignore: decorator
@inline export function headFloat<T>(qh: usize, kCache: usize, vCache: usize, kvh: i32, nKvHeads: i32, headDim: i32, nPos: i32, scale: f32, sc: usize, oh: usize): void {
  const rowBytes = <usize>nKvHeads * <usize>headDim * sizeof<T>();
  const kvOff = <usize>kvh * <usize>headDim * sizeof<T>();
  const mask = v128.load(HALF_BITS_MASK);
  const excess: f32 = sizeof<T>() == 2 ? queryExcess(qh, headDim) : 1;
  const qMul: f32 = sizeof<T>() == 2 ? TWO_POW_112 / excess : 1;
  softmax(sc, nPos, scoresFloat<T>(qh, kCache + kvOff, rowBytes, headDim, nPos, scale, sc, mask, qMul, excess));
  weightedFloat<T>(sc, vCache + kvOff, rowBytes, headDim, nPos, oh, mask);
}

// scores[t] = scale · q · k_t for a head whose keys start at k (one row every rowBytes); returns their maximum. For an
// F16 cache q is taken times qMul and a sum times excess (queryExcess): together the 2^112 that load4 leaves out.
// @ts-ignore: decorator
@inline function scoresFloat<T>(qh: usize, k: usize, rowBytes: usize, headDim: i32, nPos: i32, scale: f32, sc: usize, mask: v128, qMul: f32, excess: f32): f32 {
  const eb = sizeof<T>();
  const qm = f32x4.splat(qMul);
  let mx: f32 = -Infinity;
  let t = 0;
  for (; t + 4 <= nPos; t += 4) {
    const k0 = k + <usize>t * rowBytes;
    const k1 = k0 + rowBytes;
    const k2 = k1 + rowBytes;
    const k3 = k2 + rowBytes;
    let s0 = f32x4.splat(0);
    let s1 = f32x4.splat(0);
    let s2 = f32x4.splat(0);
    let s3 = f32x4.splat(0);
    for (let d = 0; d < headDim; d += 4) {
      let qv = v128.load(qh + (<usize>d << 2));
      if (eb == 2) qv = f32x4.mul(qv, qm);
      const o = <usize>d * eb;
      s0 = f32x4.add(s0, f32x4.mul(qv, load4<T>(k0 + o, mask)));
      s1 = f32x4.add(s1, f32x4.mul(qv, load4<T>(k1 + o, mask)));
      s2 = f32x4.add(s2, f32x4.mul(qv, load4<T>(k2 + o, mask)));
      s3 = f32x4.add(s3, f32x4.mul(qv, load4<T>(k3 + o, mask)));
    }
    mx = storeScore(sc, t, hsum(s0) * excess * scale, mx);
    mx = storeScore(sc, t + 1, hsum(s1) * excess * scale, mx);
    mx = storeScore(sc, t + 2, hsum(s2) * excess * scale, mx);
    mx = storeScore(sc, t + 3, hsum(s3) * excess * scale, mx);
  }
  for (; t < nPos; t++) {
    const kt = k + <usize>t * rowBytes;
    let s = f32x4.splat(0);
    for (let d = 0; d < headDim; d += 4) {
      let qv = v128.load(qh + (<usize>d << 2));
      if (eb == 2) qv = f32x4.mul(qv, qm);
      s = f32x4.add(s, f32x4.mul(qv, load4<T>(kt + <usize>d * eb, mask)));
    }
    mx = storeScore(sc, t, hsum(s) * excess * scale, mx);
  }
  return mx;
}

// out = Σ_t p_t · v_t: 16 values at a time in registers over every position, then the last groups of 4. For an F16
// cache p_t is taken times 2^112 (p_t ≤ 1: no overflow), the factor load4 leaves out.
// @ts-ignore: decorator
@inline function weightedFloat<T>(sc: usize, v: usize, rowBytes: usize, headDim: i32, nPos: i32, oh: usize, mask: v128): void {
  const eb = sizeof<T>();
  const pm = f32x4.splat(eb == 2 ? TWO_POW_112 : 1);
  let d = 0;
  for (; d + 16 <= headDim; d += 16) {
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let a3 = f32x4.splat(0);
    let vt = v + <usize>d * eb;
    for (let t = 0; t < nPos; t++) {
      let p = v128.load32_splat(sc + (<usize>t << 2));
      if (eb == 2) p = f32x4.mul(p, pm);
      a0 = f32x4.add(a0, f32x4.mul(p, load4<T>(vt, mask)));
      a1 = f32x4.add(a1, f32x4.mul(p, load4<T>(vt + 4 * eb, mask)));
      a2 = f32x4.add(a2, f32x4.mul(p, load4<T>(vt + 8 * eb, mask)));
      a3 = f32x4.add(a3, f32x4.mul(p, load4<T>(vt + 12 * eb, mask)));
      vt += rowBytes;
    }
    const o = oh + (<usize>d << 2);
    v128.store(o, a0);
    v128.store(o, a1, 16);
    v128.store(o, a2, 32);
    v128.store(o, a3, 48);
  }
  for (; d < headDim; d += 4) {
    let a = f32x4.splat(0);
    let vt = v + <usize>d * eb;
    for (let t = 0; t < nPos; t++) {
      let p = v128.load32_splat(sc + (<usize>t << 2));
      if (eb == 2) p = f32x4.mul(p, pm);
      a = f32x4.add(a, f32x4.mul(p, load4<T>(vt, mask)));
      vt += rowBytes;
    }
    v128.store(oh + (<usize>d << 2), a);
  }
}

// Two heads a and b of one KV head (qa, qb their queries, sca, scb their scores, oa, ob their outputs): each key and
// value is loaded and converted once for both. Every score and output value is the single-head one's, summed in the
// same order (over d in steps of 4 for a score, over t from 0 for a value).
// @ts-ignore: decorator
@inline export function headPairFloat<T>(qa: usize, qb: usize, kCache: usize, vCache: usize, kvh: i32, nKvHeads: i32, headDim: i32, nPos: i32, scale: f32, sca: usize, scb: usize, oa: usize, ob: usize): void {
  const rowBytes = <usize>nKvHeads * <usize>headDim * sizeof<T>();
  const kvOff = <usize>kvh * <usize>headDim * sizeof<T>();
  const mask = v128.load(HALF_BITS_MASK);
  const excessA: f32 = sizeof<T>() == 2 ? queryExcess(qa, headDim) : 1;
  const excessB: f32 = sizeof<T>() == 2 ? queryExcess(qb, headDim) : 1;
  scoresPair<T>(qa, qb, kCache + kvOff, rowBytes, headDim, nPos, scale, sca, scb, mask, excessA, excessB);
  softmax(sca, nPos, pairMaxA);
  softmax(scb, nPos, pairMaxB);
  weightedPair<T>(sca, scb, vCache + kvOff, rowBytes, headDim, nPos, oa, ob, mask);
}

// The two heads' largest scores (scoresPair's second result).
let pairMaxA: f32 = 0;
let pairMaxB: f32 = 0;

// scoresFloat for two heads over the same keys: four positions × two heads side by side.
// @ts-ignore: decorator
@inline function scoresPair<T>(qa: usize, qb: usize, k: usize, rowBytes: usize, headDim: i32, nPos: i32, scale: f32, sca: usize, scb: usize, mask: v128, excessA: f32, excessB: f32): void {
  const eb = sizeof<T>();
  const qmA = f32x4.splat(eb == 2 ? TWO_POW_112 / excessA : 1), qmB = f32x4.splat(eb == 2 ? TWO_POW_112 / excessB : 1);
  let mxA: f32 = -Infinity, mxB: f32 = -Infinity;
  let t = 0;
  for (; t + 4 <= nPos; t += 4) {
    const k0 = k + <usize>t * rowBytes, k1 = k0 + rowBytes, k2 = k1 + rowBytes, k3 = k2 + rowBytes;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
    for (let d = 0; d < headDim; d += 4) {
      let x = v128.load(qa + (<usize>d << 2)), y = v128.load(qb + (<usize>d << 2));
      if (eb == 2) {
        x = f32x4.mul(x, qmA);
        y = f32x4.mul(y, qmB);
      }
      const o = <usize>d * eb;
      const c0 = load4<T>(k0 + o, mask), c1 = load4<T>(k1 + o, mask);
      a0 = f32x4.add(a0, f32x4.mul(x, c0));
      b0 = f32x4.add(b0, f32x4.mul(y, c0));
      a1 = f32x4.add(a1, f32x4.mul(x, c1));
      b1 = f32x4.add(b1, f32x4.mul(y, c1));
      const c2 = load4<T>(k2 + o, mask), c3 = load4<T>(k3 + o, mask);
      a2 = f32x4.add(a2, f32x4.mul(x, c2));
      b2 = f32x4.add(b2, f32x4.mul(y, c2));
      a3 = f32x4.add(a3, f32x4.mul(x, c3));
      b3 = f32x4.add(b3, f32x4.mul(y, c3));
    }
    mxA = storeScore(sca, t, hsum(a0) * excessA * scale, mxA);
    mxA = storeScore(sca, t + 1, hsum(a1) * excessA * scale, mxA);
    mxA = storeScore(sca, t + 2, hsum(a2) * excessA * scale, mxA);
    mxA = storeScore(sca, t + 3, hsum(a3) * excessA * scale, mxA);
    mxB = storeScore(scb, t, hsum(b0) * excessB * scale, mxB);
    mxB = storeScore(scb, t + 1, hsum(b1) * excessB * scale, mxB);
    mxB = storeScore(scb, t + 2, hsum(b2) * excessB * scale, mxB);
    mxB = storeScore(scb, t + 3, hsum(b3) * excessB * scale, mxB);
  }
  for (; t < nPos; t++) {
    const kt = k + <usize>t * rowBytes;
    let a = f32x4.splat(0), b = f32x4.splat(0);
    for (let d = 0; d < headDim; d += 4) {
      let x = v128.load(qa + (<usize>d << 2)), y = v128.load(qb + (<usize>d << 2));
      if (eb == 2) {
        x = f32x4.mul(x, qmA);
        y = f32x4.mul(y, qmB);
      }
      const c = load4<T>(kt + <usize>d * eb, mask);
      a = f32x4.add(a, f32x4.mul(x, c));
      b = f32x4.add(b, f32x4.mul(y, c));
    }
    mxA = storeScore(sca, t, hsum(a) * excessA * scale, mxA);
    mxB = storeScore(scb, t, hsum(b) * excessB * scale, mxB);
  }
  pairMaxA = mxA;
  pairMaxB = mxB;
}

// weightedFloat for two heads over the same values: 16 values of both at a time over every position.
// @ts-ignore: decorator
@inline function weightedPair<T>(sca: usize, scb: usize, v: usize, rowBytes: usize, headDim: i32, nPos: i32, oa: usize, ob: usize, mask: v128): void {
  const eb = sizeof<T>();
  const pm = f32x4.splat(eb == 2 ? TWO_POW_112 : 1);
  let d = 0;
  for (; d + 16 <= headDim; d += 16) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
    let vt = v + <usize>d * eb;
    for (let t = 0; t < nPos; t++) {
      let p = v128.load32_splat(sca + (<usize>t << 2)), r = v128.load32_splat(scb + (<usize>t << 2));
      if (eb == 2) {
        p = f32x4.mul(p, pm);
        r = f32x4.mul(r, pm);
      }
      const c0 = load4<T>(vt, mask), c1 = load4<T>(vt + 4 * eb, mask);
      a0 = f32x4.add(a0, f32x4.mul(p, c0));
      b0 = f32x4.add(b0, f32x4.mul(r, c0));
      a1 = f32x4.add(a1, f32x4.mul(p, c1));
      b1 = f32x4.add(b1, f32x4.mul(r, c1));
      const c2 = load4<T>(vt + 8 * eb, mask), c3 = load4<T>(vt + 12 * eb, mask);
      a2 = f32x4.add(a2, f32x4.mul(p, c2));
      b2 = f32x4.add(b2, f32x4.mul(r, c2));
      a3 = f32x4.add(a3, f32x4.mul(p, c3));
      b3 = f32x4.add(b3, f32x4.mul(r, c3));
      vt += rowBytes;
    }
    const o = <usize>d << 2;
    v128.store(oa + o, a0);
    v128.store(oa + o, a1, 16);
    v128.store(oa + o, a2, 32);
    v128.store(oa + o, a3, 48);
    v128.store(ob + o, b0);
    v128.store(ob + o, b1, 16);
    v128.store(ob + o, b2, 32);
    v128.store(ob + o, b3, 48);
  }
  for (; d < headDim; d += 4) {
    let a = f32x4.splat(0), b = f32x4.splat(0);
    let vt = v + <usize>d * eb;
    for (let t = 0; t < nPos; t++) {
      let p = v128.load32_splat(sca + (<usize>t << 2)), r = v128.load32_splat(scb + (<usize>t << 2));
      if (eb == 2) {
        p = f32x4.mul(p, pm);
        r = f32x4.mul(r, pm);
      }
      const c = load4<T>(vt, mask);
      a = f32x4.add(a, f32x4.mul(p, c));
      b = f32x4.add(b, f32x4.mul(r, c));
      vt += rowBytes;
    }
    v128.store(oa + (<usize>d << 2), a);
    v128.store(ob + (<usize>d << 2), b);
  }
}
