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
import { headFloat, headPairFloat } from './attention-float';
import { softmax, storeScore } from './attention-softmax';
import { halfScale } from '../quant/half-scale';
import { KV_Q8_0_BLOCK_BYTES } from './kv-q8';

export const KV_F16: i32 = 1;
export const KV_F32: i32 = 0;
export const KV_Q8_0: i32 = 2;

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
    if (kvType != KV_Q8_0 && h + 1 < h1 && (h + 1) / group == kvh) {
      // The next head reads the same keys and values: both at once (attention-float.ts), the same bits.
      const qh1 = qh + ((<usize>headDim) << 2), sc1 = sc + ((<usize>nPos) << 2), oh1 = oh + ((<usize>headDim) << 2);
      if (kvType == KV_F32) headPairFloat<f32>(qh, qh1, kCache, vCache, kvh, nKvHeads, headDim, nPos, scale, sc, sc1, oh, oh1);
      else headPairFloat<u16>(qh, qh1, kCache, vCache, kvh, nKvHeads, headDim, nPos, scale, sc, sc1, oh, oh1);
      h++;
    } else if (kvType == KV_Q8_0) {
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
