// Causal attention's forward for training (node's training/attention-grad.ts, whose f32 path this is): the scores
// q·k·scale, their softmax and P·V, each sum in the host loops' order carried in f64, and the exponentials those
// loops take (exp-f64.ts, whose TypeScript twin they call), so the same bits.
import { expF64, expF64x2 } from './exp-f64';

// @ts-ignore: decorator
@inline function f(p: usize, i: i32): f64 {
  return <f64>load<f32>(p + (<usize>i << 2));
}

/**
 * scores [h1 − h0, t, t] (f64; only j ≤ i written) = q_i·k_j (d in order) · scale for heads [h0, h1), from q
 * [t, heads·headDim] and k [t, kvHeads·headDim], four keys side by side. (A range of heads at a time: the host keeps
 * the scores' block small whatever the sequence's length.)
 */
export function attentionScores(q: usize, k: usize, t: i32, heads: i32, kvHeads: i32, headDim: i32, scale: f64, scores: usize, h0: i32, h1: i32): void {
  const qW = heads * headDim;
  const kvW = kvHeads * headDim;
  const group = heads / kvHeads;
  for (let h = h0; h < h1; h++) {
    const kh = (h / group) * headDim;
    for (let i = 0; i < t; i++) {
      const qo = i * qW + h * headDim;
      const so = scores + (<usize>(((h - h0) * t + i) * t) << 3);
      let j = 0;
      for (; j + 3 <= i; j += 4) {
        const k0 = j * kvW + kh, k1 = k0 + kvW, k2 = k1 + kvW, k3 = k2 + kvW;
        let s0: f64 = 0, s1: f64 = 0, s2: f64 = 0, s3: f64 = 0;
        for (let d = 0; d < headDim; d++) {
          const x = f(q, qo + d);
          s0 += x * f(k, k0 + d);
          s1 += x * f(k, k1 + d);
          s2 += x * f(k, k2 + d);
          s3 += x * f(k, k3 + d);
        }
        const sp = so + (<usize>j << 3);
        store<f64>(sp, s0 * scale);
        store<f64>(sp, s1 * scale, 8);
        store<f64>(sp, s2 * scale, 16);
        store<f64>(sp, s3 * scale, 24);
      }
      for (; j <= i; j++) {
        const ko = j * kvW + kh;
        let s: f64 = 0;
        for (let d = 0; d < headDim; d++) s += f(q, qo + d) * f(k, ko + d);
        store<f64>(so + (<usize>j << 3), s * scale);
      }
    }
  }
}

/**
 * Each row i of the scores attentionScores wrote for h heads ([h, t, t], f64, j ≤ i) → its causal softmax: e^(s_j −
 * max) in place of s_j (j ≤ i), their sum in order, probs [h, t, t] (f32) = e_j / sum, and 0 for j > i.
 */
export function attentionSoftmax(scores: usize, probs: usize, t: i32, h: i32): void {
  for (let row = 0; row < h * t; row++) {
    const i = row % t;
    const so = scores + (<usize>(row * t) << 3);
    const po = probs + (<usize>(row * t) << 2);
    let max: f64 = -Infinity;
    for (let j = 0; j <= i; j++) {
      const s = load<f64>(so + (<usize>j << 3));
      if (s > max) max = s;
    }
    const m = f64x2.splat(max);
    let j = 0;
    for (; j + 2 <= i + 1; j += 2) {
      const sp = so + (<usize>j << 3);
      v128.store(sp, expF64x2(f64x2.sub(v128.load(sp), m)));
    }
    if (j <= i) store<f64>(so + (<usize>j << 3), expF64(load<f64>(so + (<usize>j << 3)) - max));
    let sum: f64 = 0;
    for (j = 0; j <= i; j++) sum += load<f64>(so + (<usize>j << 3));
    const sv = f64x2.splat(sum);
    for (j = 0; j + 2 <= i + 1; j += 2) {
      v128.store64_lane(po + (<usize>j << 2), f32x4.demote_f64x2_zero(f64x2.div(v128.load(so + (<usize>j << 3)), sv)), 0);
    }
    if (j <= i) store<f32>(po + (<usize>j << 2), <f32>(load<f64>(so + (<usize>j << 3)) / sum));
    for (j = i + 1; j < t; j++) store<f32>(po + (<usize>j << 2), 0);
  }
}

/**
 * out [t, heads·headDim] (f32) = Σ_j P_ij V_j for heads [h0, h1), j in order in an f64 sum per element (acc: headDim
 * f64 of scratch), from those heads' probs [h1 − h0, t, t] (f32) and v [t, kvHeads·headDim]; two elements at a time
 * (f64x2 lanes, each its own sum).
 */
export function attentionValues(probs: usize, v: usize, t: i32, heads: i32, kvHeads: i32, headDim: i32, out: usize, acc: usize, h0: i32, h1: i32): void {
  const qW = heads * headDim;
  const kvW = kvHeads * headDim;
  const group = heads / kvHeads;
  const d2 = headDim & ~1;
  for (let h = h0; h < h1; h++) {
    const kh = (h / group) * headDim;
    for (let i = 0; i < t; i++) {
      const qo = i * qW + h * headDim;
      const po = ((h - h0) * t + i) * t;
      memory.fill(acc, 0, <usize>headDim << 3);
      let j = 0;
      for (; j + 3 <= i; j += 4) {
        const v0 = j * kvW + kh, v1 = v0 + kvW, v2 = v1 + kvW, v3 = v2 + kvW;
        const p0 = f(probs, po + j), p1 = f(probs, po + j + 1), p2 = f(probs, po + j + 2), p3 = f(probs, po + j + 3);
        const c0 = f64x2.splat(p0), c1 = f64x2.splat(p1), c2 = f64x2.splat(p2), c3 = f64x2.splat(p3);
        let d = 0;
        for (; d < d2; d += 2) {
          const ap = acc + (<usize>d << 3);
          let a = v128.load(ap);
          a = f64x2.add(a, f64x2.mul(c0, f64x2.promote_low_f32x4(v128.load64_zero(v + (<usize>(v0 + d) << 2)))));
          a = f64x2.add(a, f64x2.mul(c1, f64x2.promote_low_f32x4(v128.load64_zero(v + (<usize>(v1 + d) << 2)))));
          a = f64x2.add(a, f64x2.mul(c2, f64x2.promote_low_f32x4(v128.load64_zero(v + (<usize>(v2 + d) << 2)))));
          v128.store(ap, f64x2.add(a, f64x2.mul(c3, f64x2.promote_low_f32x4(v128.load64_zero(v + (<usize>(v3 + d) << 2))))));
        }
        for (; d < headDim; d++) {
          const ap = acc + (<usize>d << 3);
          let a = load<f64>(ap);
          a += p0 * f(v, v0 + d);
          a += p1 * f(v, v1 + d);
          a += p2 * f(v, v2 + d);
          store<f64>(ap, a + p3 * f(v, v3 + d));
        }
      }
      for (; j <= i; j++) {
        const vo = j * kvW + kh;
        const p = f(probs, po + j);
        for (let d = 0; d < headDim; d++) {
          const ap = acc + (<usize>d << 3);
          store<f64>(ap, load<f64>(ap) + p * f(v, vo + d));
        }
      }
      for (let d = 0; d < headDim; d++) store<f32>(out + (<usize>(qo + d) << 2), <f32>load<f64>(acc + (<usize>d << 3)));
    }
  }
}
