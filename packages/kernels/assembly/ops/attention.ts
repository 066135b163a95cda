// Grouped-query attention of one query row over the first nPos positions of one request's KV cache (F16, F32 or Q8_0,
// each position a row of kvDim = nKvHeads·headDim values, keys and values in separate arrays). Heads [h0, h1) only, so
// that threads can share the heads of a row; head h's scores live at scores + h·nPos, so they never overlap.
//
// Every result is summed in one fixed order, whatever the batch, the threads or the loop shapes below: a score is
// Σ over d (in steps of 4 lanes, then the lanes as hsum adds them) of q·k, times scale; an output value is Σ over t
// (from t = 0) of p_t·v_t. The loops only choose what runs side by side: four positions' scores at once (their chains
// are independent), and the weighted sum held in registers for 16 values (a Q8_0 block: 32) over all positions, so
// the output is not loaded and stored again for every position.
import { hsum } from '../simd';
import { halfScale } from '../quant/half-scale';
import { KV_Q8_0_BLOCK_BYTES } from './kv-q8';

export const KV_F16: i32 = 1;
export const KV_F32: i32 = 0;
export const KV_Q8_0: i32 = 2;

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

export function attention(
  kvType: i32,
  q: usize,
  kCache: usize,
  vCache: usize,
  nPos: i32,
  nHeads: i32,
  nKvHeads: i32,
  headDim: i32,
  scale: f32,
  out: usize,
  scores: usize,
  h0: i32,
  h1: i32,
): void {
  const group = nHeads / nKvHeads;
  for (let h = h0; h < h1; h++) {
    const qh = q + ((<usize>h * <usize>headDim) << 2);
    const kvh = h / group;
    const sc = scores + ((<usize>h * <usize>nPos) << 2);
    const oh = out + ((<usize>h * <usize>headDim) << 2);
    if (kvType == KV_Q8_0) {
      const nb = headDim >> 5; // headDim is a multiple of 32 (checked by the host): a head is whole blocks
      const rowBytes = <usize>nKvHeads * <usize>nb * KV_Q8_0_BLOCK_BYTES;
      const kvOff = <usize>kvh * <usize>nb * KV_Q8_0_BLOCK_BYTES;
      softmax(sc, nPos, scoresQ8_0(qh, kCache + kvOff, rowBytes, nb, nPos, scale, sc));
      weightedQ8_0(sc, vCache + kvOff, rowBytes, nb, nPos, oh);
    } else if (kvType == KV_F32) {
      headFloat<f32>(qh, kCache, vCache, kvh, nKvHeads, headDim, nPos, scale, sc, oh);
    } else {
      headFloat<u16>(qh, kCache, vCache, kvh, nKvHeads, headDim, nPos, scale, sc, oh);
    }
  }
}

// One head over an F32 (T = f32) or F16 (T = u16) cache.
// @ts-ignore: decorator
@inline function headFloat<T>(qh: usize, kCache: usize, vCache: usize, kvh: i32, nKvHeads: i32, headDim: i32, nPos: i32, scale: f32, sc: usize, oh: usize): void {
  const rowBytes = <usize>nKvHeads * <usize>headDim * sizeof<T>();
  const kvOff = <usize>kvh * <usize>headDim * sizeof<T>();
  const mask = v128.load(HALF_BITS_MASK);
  const excess: f32 = sizeof<T>() == 2 ? queryExcess(qh, headDim) : 1;
  const qMul: f32 = sizeof<T>() == 2 ? TWO_POW_112 / excess : 1;
  softmax(sc, nPos, scoresFloat<T>(qh, kCache + kvOff, rowBytes, headDim, nPos, scale, sc, mask, qMul, excess));
  weightedFloat<T>(sc, vCache + kvOff, rowBytes, headDim, nPos, oh, mask);
}

/** Scores at sc → the attention weights p_t = exp(score − mx) / Σ, in place. */
// @ts-ignore: decorator
@inline function softmax(sc: usize, nPos: i32, mx: f32): void {
  let sum: f32 = 0;
  for (let t = 0; t < nPos; t++) {
    const e = Mathf.exp(load<f32>(sc + (<usize>t << 2)) - mx);
    store<f32>(sc + (<usize>t << 2), e);
    sum += e;
  }
  const inv = <f32>1 / sum;
  for (let t = 0; t < nPos; t++) store<f32>(sc + (<usize>t << 2), load<f32>(sc + (<usize>t << 2)) * inv);
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

// @ts-ignore: decorator
@inline function storeScore(sc: usize, t: i32, v: f32, mx: f32): f32 {
  store<f32>(sc + (<usize>t << 2), v);
  return max(mx, v);
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

// i8x16 → its low / high eight as i16x8; i16x8 → its low / high four as f32x4.
// @ts-ignore: decorator
@inline function i8lo(v: v128): v128 {
  return i16x8.extend_low_i8x16_s(v);
}
// @ts-ignore: decorator
@inline function i8hi(v: v128): v128 {
  return i16x8.extend_high_i8x16_s(v);
}
// @ts-ignore: decorator
@inline function f32lo(w: v128): v128 {
  return f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(w));
}
// @ts-ignore: decorator
@inline function f32hi(w: v128): v128 {
  return f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(w));
}

// One Q8_0 block's contribution to a score: (Σ_j q_j · int8_j, in lanes) · d.
// @ts-ignore: decorator
@inline function blockDot(qb: usize, blk: usize): v128 {
  const lo = v128.load(blk, 2);
  const hi = v128.load(blk, 18);
  let a = f32x4.mul(v128.load(qb), f32lo(i8lo(lo)));
  a = f32x4.add(a, f32x4.mul(v128.load(qb, 16), f32hi(i8lo(lo))));
  a = f32x4.add(a, f32x4.mul(v128.load(qb, 32), f32lo(i8hi(lo))));
  a = f32x4.add(a, f32x4.mul(v128.load(qb, 48), f32hi(i8hi(lo))));
  a = f32x4.add(a, f32x4.mul(v128.load(qb, 64), f32lo(i8lo(hi))));
  a = f32x4.add(a, f32x4.mul(v128.load(qb, 80), f32hi(i8lo(hi))));
  a = f32x4.add(a, f32x4.mul(v128.load(qb, 96), f32lo(i8hi(hi))));
  a = f32x4.add(a, f32x4.mul(v128.load(qb, 112), f32hi(i8hi(hi))));
  return f32x4.mul(a, f32x4.splat(halfScale(load<u16>(blk))));
}

// Scores over a Q8_0 cache: a row is kvDim/32 blocks of 34 bytes, dequantised on the fly (per block, the int8
// values times q in f32, then scaled by the block's d).
// @ts-ignore: decorator
@inline function scoresQ8_0(qh: usize, k: usize, rowBytes: usize, nb: i32, nPos: i32, scale: f32, sc: usize): f32 {
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
    for (let b = 0; b < nb; b++) {
      const qb = qh + (<usize>b << 7);
      const o = <usize>b * KV_Q8_0_BLOCK_BYTES;
      s0 = f32x4.add(s0, blockDot(qb, k0 + o));
      s1 = f32x4.add(s1, blockDot(qb, k1 + o));
      s2 = f32x4.add(s2, blockDot(qb, k2 + o));
      s3 = f32x4.add(s3, blockDot(qb, k3 + o));
    }
    mx = storeScore(sc, t, hsum(s0) * scale, mx);
    mx = storeScore(sc, t + 1, hsum(s1) * scale, mx);
    mx = storeScore(sc, t + 2, hsum(s2) * scale, mx);
    mx = storeScore(sc, t + 3, hsum(s3) * scale, mx);
  }
  for (; t < nPos; t++) {
    const kt = k + <usize>t * rowBytes;
    let s = f32x4.splat(0);
    for (let b = 0; b < nb; b++) s = f32x4.add(s, blockDot(qh + (<usize>b << 7), kt + <usize>b * KV_Q8_0_BLOCK_BYTES));
    mx = storeScore(sc, t, hsum(s) * scale, mx);
  }
  return mx;
}

// out = Σ_t p_t · v_t over a Q8_0 cache, one block (32 values, eight accumulators) at a time over every position:
// per position, p_t · d times the int8 values.
// @ts-ignore: decorator
@inline function weightedQ8_0(sc: usize, v: usize, rowBytes: usize, nb: i32, nPos: i32, oh: usize): void {
  for (let b = 0; b < nb; b++) {
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let a3 = f32x4.splat(0);
    let a4 = f32x4.splat(0);
    let a5 = f32x4.splat(0);
    let a6 = f32x4.splat(0);
    let a7 = f32x4.splat(0);
    let blk = v + <usize>b * KV_Q8_0_BLOCK_BYTES;
    for (let t = 0; t < nPos; t++) {
      const pd = f32x4.splat(load<f32>(sc + (<usize>t << 2)) * halfScale(load<u16>(blk)));
      const lo = v128.load(blk, 2);
      const hi = v128.load(blk, 18);
      a0 = f32x4.add(a0, f32x4.mul(pd, f32lo(i8lo(lo))));
      a1 = f32x4.add(a1, f32x4.mul(pd, f32hi(i8lo(lo))));
      a2 = f32x4.add(a2, f32x4.mul(pd, f32lo(i8hi(lo))));
      a3 = f32x4.add(a3, f32x4.mul(pd, f32hi(i8hi(lo))));
      a4 = f32x4.add(a4, f32x4.mul(pd, f32lo(i8lo(hi))));
      a5 = f32x4.add(a5, f32x4.mul(pd, f32hi(i8lo(hi))));
      a6 = f32x4.add(a6, f32x4.mul(pd, f32lo(i8hi(hi))));
      a7 = f32x4.add(a7, f32x4.mul(pd, f32hi(i8hi(hi))));
      blk += rowBytes;
    }
    const o = oh + (<usize>b << 7);
    v128.store(o, a0);
    v128.store(o, a1, 16);
    v128.store(o, a2, 32);
    v128.store(o, a3, 48);
    v128.store(o, a4, 64);
    v128.store(o, a5, 80);
    v128.store(o, a6, 96);
    v128.store(o, a7, 112);
  }
}
