import { zerosLike, type Vec } from './vec.js';

/** One sequence's causal self-attention: T rows; q has `heads` heads, k and v `kvHeads` (grouped-query). */
export interface AttentionShape {
  t: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

/**
 * Row i of head h attends over rows 0..i of its KV head h / (heads / kvHeads) with scores q·k / √headDim (the
 * engine's scale). Returns the output [T, heads·headDim] and the softmax probabilities [heads, T, T] (zero above the
 * diagonal) that the backward needs.
 */
export function attentionForward(q: Vec, k: Vec, v: Vec, sh: AttentionShape): { out: Vec; probs: Vec } {
  const { t, heads, kvHeads, headDim } = sh;
  const qW = heads * headDim;
  const kvW = kvHeads * headDim;
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const out = zerosLike(q, t * qW);
  const probs = zerosLike(q, heads * t * t);
  const scores = new Float64Array(t);
  for (let h = 0; h < heads; h++) {
    const kh = Math.floor(h / group) * headDim;
    for (let i = 0; i < t; i++) {
      const qo = i * qW + h * headDim;
      let max = -Infinity;
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let d = 0; d < headDim; d++) s += q[qo + d] * k[j * kvW + kh + d];
        scores[j] = s * scale;
        if (scores[j] > max) max = scores[j];
      }
      let sum = 0;
      for (let j = 0; j <= i; j++) {
        scores[j] = Math.exp(scores[j] - max);
        sum += scores[j];
      }
      const po = (h * t + i) * t;
      for (let j = 0; j <= i; j++) probs[po + j] = scores[j] / sum;
      for (let d = 0; d < headDim; d++) {
        let s = 0;
        for (let j = 0; j <= i; j++) s += probs[po + j] * v[j * kvW + kh + d];
        out[qo + d] = s;
      }
    }
  }
  return { out, probs };
}

/**
 * Gradients of attentionForward: dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − Σ_j dP·P), dQ = s·dS·K, dK = s·dSᵀ·Q; a KV
 * head sums the gradients of every query head of its group, in head order.
 */
export function attentionBackward(dOut: Vec, q: Vec, k: Vec, v: Vec, probs: Vec, sh: AttentionShape): { dq: Vec; dk: Vec; dv: Vec } {
  const { t, heads, kvHeads, headDim } = sh;
  const qW = heads * headDim;
  const kvW = kvHeads * headDim;
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const dq = zerosLike(q, q.length);
  const dk = zerosLike(k, k.length);
  const dv = zerosLike(v, v.length);
  const dS = new Float64Array(t);
  for (let h = 0; h < heads; h++) {
    const kh = Math.floor(h / group) * headDim;
    for (let i = 0; i < t; i++) {
      const qo = i * qW + h * headDim;
      const po = (h * t + i) * t;
      let dot = 0;
      for (let j = 0; j <= i; j++) {
        let dp = 0;
        for (let d = 0; d < headDim; d++) dp += dOut[qo + d] * v[j * kvW + kh + d];
        dS[j] = dp;
        dot += dp * probs[po + j];
      }
      for (let j = 0; j <= i; j++) {
        const p = probs[po + j];
        const ds = p * (dS[j] - dot) * scale;
        const ko = j * kvW + kh;
        for (let d = 0; d < headDim; d++) {
          dv[ko + d] += p * dOut[qo + d];
          dq[qo + d] += ds * k[ko + d];
          dk[ko + d] += ds * q[qo + d];
        }
      }
    }
  }
  return { dq, dk, dv };
}
