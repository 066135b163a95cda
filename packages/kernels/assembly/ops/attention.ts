// Grouped-query attention of one query row over the first nPos positions of one request's KV cache (F16 or F32, each
// position a row of kvDim = nKvHeads·headDim values, keys and values in separate arrays). Heads [h0, h1) only, so
// that threads can share the heads of a row; head h's scores live at scores + h·nPos, so they never overlap.
import { hsum } from '../simd';

// Four f16 values → f32x4 (exponent rebased by 2^112, sign moved up).
// @ts-ignore: decorator
@inline function f16x4(p: usize): v128 {
  const h = i32x4.extend_low_i16x8_u(v128.load64_zero(p));
  const mag = f32x4.mul(i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13), f32x4.splat(5.192296858534828e33));
  return v128.or(mag, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

export const KV_F16: i32 = 1;
export const KV_F32: i32 = 0;

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
    // softmax
    let sum: f32 = 0;
    for (let t = 0; t < nPos; t++) {
      const e = Mathf.exp(load<f32>(sc + (<usize>t << 2)) - mx);
      store<f32>(sc + (<usize>t << 2), e);
      sum += e;
    }
    const inv: f32 = 1 / sum;
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
