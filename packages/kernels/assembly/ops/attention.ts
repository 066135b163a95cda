// Grouped-query attention of one query row over the first nPos positions of one request's KV cache (F16, F32 or Q8_0,
// each position a row of kvDim = nKvHeads·headDim values, keys and values in separate arrays). Heads [h0, h1) only, so
// that threads can share the heads of a row; head h's scores live at scores + h·nPos, so they never overlap.
import { hsum } from '../simd';
import { halfScale } from '../quant/half-scale';
import { KV_Q8_0_BLOCK_BYTES } from './kv-q8';

// Four f16 values → f32x4 (exponent rebased by 2^112, sign moved up).
// @ts-ignore: decorator
@inline function f16x4(p: usize): v128 {
  const h = i32x4.extend_low_i16x8_u(v128.load64_zero(p));
  const mag = f32x4.mul(i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13), f32x4.splat(5.192296858534828e33));
  return v128.or(mag, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

export const KV_F16: i32 = 1;
export const KV_F32: i32 = 0;
export const KV_Q8_0: i32 = 2;

// @ts-ignore: decorator
@inline function kv4(kvType: i32, p: usize): v128 {
  return kvType == KV_F32 ? v128.load(p) : f16x4(p);
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
  if (kvType == KV_Q8_0) {
    attentionQ8_0(q, kCache, vCache, nPos, nHeads, nKvHeads, headDim, scale, out, scores, h0, h1);
    return;
  }
  const group = nHeads / nKvHeads;
  const kvDim = <usize>nKvHeads * <usize>headDim;
  const eb: usize = kvType == KV_F32 ? 4 : 2; // bytes per cached value
  for (let h = h0; h < h1; h++) {
    const qh = q + ((<usize>h * <usize>headDim) << 2);
    const kvOff = <usize>(h / group) * <usize>headDim * eb; // byte offset of this head's slice in a cache row
    const sc = scores + ((<usize>h * <usize>nPos) << 2);

    // scores[t] = scale · q · k_t, and their maximum
    let mx: f32 = -Infinity;
    for (let t = 0; t < nPos; t++) {
      const k = kCache + <usize>t * kvDim * eb + kvOff;
      let s = f32x4.splat(0);
      for (let d = 0; d < headDim; d += 4) s = f32x4.add(s, f32x4.mul(v128.load(qh + (<usize>d << 2)), kv4(kvType, k + <usize>d * eb)));
      const v = hsum(s) * scale;
      store<f32>(sc + (<usize>t << 2), v);
      mx = max(mx, v);
    }
    const inv = softmax(sc, nPos, mx);
    // out_h = Σ_t p_t · v_t
    const oh = out + ((<usize>h * <usize>headDim) << 2);
    for (let d = 0; d < headDim; d += 4) v128.store(oh + (<usize>d << 2), f32x4.splat(0));
    for (let t = 0; t < nPos; t++) {
      const p = f32x4.splat(load<f32>(sc + (<usize>t << 2)) * inv);
      const v = vCache + <usize>t * kvDim * eb + kvOff;
      for (let d = 0; d < headDim; d += 4) {
        const o = oh + (<usize>d << 2);
        v128.store(o, f32x4.add(v128.load(o), f32x4.mul(p, kv4(kvType, v + <usize>d * eb))));
      }
    }
  }
}

// Scores at sc → exp(score − mx) in place; returns 1 / their sum.
// @ts-ignore: decorator
@inline function softmax(sc: usize, nPos: i32, mx: f32): f32 {
  let sum: f32 = 0;
  for (let t = 0; t < nPos; t++) {
    const e = Mathf.exp(load<f32>(sc + (<usize>t << 2)) - mx);
    store<f32>(sc + (<usize>t << 2), e);
    sum += e;
  }
  return <f32>1 / sum;
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

// The same attention over a Q8_0 cache: a row is kvDim/32 blocks of 34 bytes (headDim a multiple of 32, so a head's
// slice is whole blocks). Dequantised on the fly: per block, the integer values times q (or added into the output)
// in f32, then scaled by the block's d, in a fixed order whatever the batch or the threads.
function attentionQ8_0(q: usize, kCache: usize, vCache: usize, nPos: i32, nHeads: i32, nKvHeads: i32, headDim: i32, scale: f32, out: usize, scores: usize, h0: i32, h1: i32): void {
  const group = nHeads / nKvHeads;
  const nb = headDim >> 5; // blocks per head
  const rowBytes = <usize>nKvHeads * <usize>nb * KV_Q8_0_BLOCK_BYTES;
  for (let h = h0; h < h1; h++) {
    const qh = q + ((<usize>h * <usize>headDim) << 2);
    const kvOff = <usize>(h / group) * <usize>nb * KV_Q8_0_BLOCK_BYTES;
    const sc = scores + ((<usize>h * <usize>nPos) << 2);

    let mx: f32 = -Infinity;
    for (let t = 0; t < nPos; t++) {
      const k = kCache + <usize>t * rowBytes + kvOff;
      let s = f32x4.splat(0);
      for (let b = 0; b < nb; b++) {
        const blk = k + <usize>b * KV_Q8_0_BLOCK_BYTES;
        const qb = qh + (<usize>b << 7);
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
        s = f32x4.add(s, f32x4.mul(a, f32x4.splat(halfScale(load<u16>(blk)))));
      }
      const v = hsum(s) * scale;
      store<f32>(sc + (<usize>t << 2), v);
      mx = max(mx, v);
    }
    const inv = softmax(sc, nPos, mx);
    const oh = out + ((<usize>h * <usize>headDim) << 2);
    for (let d = 0; d < headDim; d += 4) v128.store(oh + (<usize>d << 2), f32x4.splat(0));
    for (let t = 0; t < nPos; t++) {
      const p = load<f32>(sc + (<usize>t << 2)) * inv;
      const v = vCache + <usize>t * rowBytes + kvOff;
      for (let b = 0; b < nb; b++) {
        const blk = v + <usize>b * KV_Q8_0_BLOCK_BYTES;
        const pd = f32x4.splat(p * halfScale(load<u16>(blk)));
        const o = oh + (<usize>b << 7);
        const lo = v128.load(blk, 2);
        const hi = v128.load(blk, 18);
        v128.store(o, f32x4.add(v128.load(o), f32x4.mul(pd, f32lo(i8lo(lo)))));
        v128.store(o, f32x4.add(v128.load(o, 16), f32x4.mul(pd, f32hi(i8lo(lo)))), 16);
        v128.store(o, f32x4.add(v128.load(o, 32), f32x4.mul(pd, f32lo(i8hi(lo)))), 32);
        v128.store(o, f32x4.add(v128.load(o, 48), f32x4.mul(pd, f32hi(i8hi(lo)))), 48);
        v128.store(o, f32x4.add(v128.load(o, 64), f32x4.mul(pd, f32lo(i8lo(hi)))), 64);
        v128.store(o, f32x4.add(v128.load(o, 80), f32x4.mul(pd, f32hi(i8lo(hi)))), 80);
        v128.store(o, f32x4.add(v128.load(o, 96), f32x4.mul(pd, f32lo(i8hi(hi)))), 96);
        v128.store(o, f32x4.add(v128.load(o, 112), f32x4.mul(pd, f32hi(i8hi(hi)))), 112);
      }
    }
  }
}
