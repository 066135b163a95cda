import { expF64 } from '@edge-node/kernels';
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
 *
 * Every sum runs over its terms in the order of the plain loops (d for a dot product, j for a row of P·V), carried in
 * f64; four of them run side by side (four keys, four value rows) so their additions do not wait on each other. The
 * order within each sum is what fixes its bits, so these give the bits of the one-at-a-time loops. The softmax's
 * e^x is the kernels' expF64, which `attention_softmax` computes bit for bit.
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
  const acc = new Float64Array(headDim);
  for (let h = 0; h < heads; h++) {
    const kh = Math.floor(h / group) * headDim;
    for (let i = 0; i < t; i++) {
      const qo = i * qW + h * headDim;
      let j = 0;
      for (; j + 3 <= i; j += 4) {
        const k0 = j * kvW + kh, k1 = k0 + kvW, k2 = k1 + kvW, k3 = k2 + kvW;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (let d = 0; d < headDim; d++) {
          const x = q[qo + d];
          s0 += x * k[k0 + d];
          s1 += x * k[k1 + d];
          s2 += x * k[k2 + d];
          s3 += x * k[k3 + d];
        }
        scores[j] = s0 * scale;
        scores[j + 1] = s1 * scale;
        scores[j + 2] = s2 * scale;
        scores[j + 3] = s3 * scale;
      }
      for (; j <= i; j++) {
        const ko = j * kvW + kh;
        let s = 0;
        for (let d = 0; d < headDim; d++) s += q[qo + d] * k[ko + d];
        scores[j] = s * scale;
      }
      let max = -Infinity;
      for (let jj = 0; jj <= i; jj++) if (scores[jj] > max) max = scores[jj];
      let sum = 0;
      for (let jj = 0; jj <= i; jj++) {
        const e = expF64(scores[jj] - max);
        scores[jj] = e;
        sum += e;
      }
      const po = (h * t + i) * t;
      for (let jj = 0; jj <= i; jj++) probs[po + jj] = scores[jj] / sum;
      acc.fill(0);
      j = 0;
      for (; j + 3 <= i; j += 4) {
        const v0 = j * kvW + kh, v1 = v0 + kvW, v2 = v1 + kvW, v3 = v2 + kvW;
        const p0 = probs[po + j], p1 = probs[po + j + 1], p2 = probs[po + j + 2], p3 = probs[po + j + 3];
        for (let d = 0; d < headDim; d++) {
          let a = acc[d];
          a += p0 * v[v0 + d];
          a += p1 * v[v1 + d];
          a += p2 * v[v2 + d];
          a += p3 * v[v3 + d];
          acc[d] = a;
        }
      }
      for (; j <= i; j++) {
        const vo = j * kvW + kh;
        const p = probs[po + j];
        for (let d = 0; d < headDim; d++) acc[d] += p * v[vo + d];
      }
      for (let d = 0; d < headDim; d++) out[qo + d] = acc[d];
    }
  }
  return { out, probs };
}

/**
 * Gradients of attentionForward: dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − Σ_j dP·P), dQ = s·dS·K, dK = s·dSᵀ·Q; a KV
 * head sums the gradients of every query head of its group, in head order.
 *
 * In three passes per head: dS for every row (dot products four keys at a time), then each dQ row over j, then each
 * dK and dV row over i, four terms at a time. Each element still adds its terms in the order of the plain loop
 * (heads, then i, then j) and, on f32 arrays, rounds to f32 after every addition as `+=` into the array did, so the
 * bits are those of the one-loop form (attention-grad tests compare against it).
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
  // Each += into an f32 array rounds to f32: a sum held in a register rounds the same way after each add.
  const f32 = dq instanceof Float32Array;
  const ds = new Float64Array(t * t);
  const row = new Float64Array(headDim);
  for (let h = 0; h < heads; h++) {
    const kh = Math.floor(h / group) * headDim;
    const hq = h * headDim;
    // dS_ij = P_ij · (dO_i·V_j − Σ_j' dO_i·V_j' · P_ij') · scale, row by row.
    for (let i = 0; i < t; i++) {
      const qo = i * qW + hq;
      const po = (h * t + i) * t;
      const so = i * t;
      let j = 0;
      for (; j + 3 <= i; j += 4) {
        const v0 = j * kvW + kh, v1 = v0 + kvW, v2 = v1 + kvW, v3 = v2 + kvW;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (let d = 0; d < headDim; d++) {
          const g = dOut[qo + d];
          s0 += g * v[v0 + d];
          s1 += g * v[v1 + d];
          s2 += g * v[v2 + d];
          s3 += g * v[v3 + d];
        }
        ds[so + j] = s0;
        ds[so + j + 1] = s1;
        ds[so + j + 2] = s2;
        ds[so + j + 3] = s3;
      }
      for (; j <= i; j++) {
        const vo = j * kvW + kh;
        let s = 0;
        for (let d = 0; d < headDim; d++) s += dOut[qo + d] * v[vo + d];
        ds[so + j] = s;
      }
      let dot = 0;
      for (j = 0; j <= i; j++) dot += ds[so + j] * probs[po + j];
      for (j = 0; j <= i; j++) ds[so + j] = probs[po + j] * (ds[so + j] - dot) * scale;
      // dQ_i = Σ_j dS_ij K_j, j in order.
      row.fill(0);
      j = 0;
      for (; j + 3 <= i; j += 4) {
        const k0 = j * kvW + kh, k1 = k0 + kvW, k2 = k1 + kvW, k3 = k2 + kvW;
        const d0 = ds[so + j], d1 = ds[so + j + 1], d2 = ds[so + j + 2], d3 = ds[so + j + 3];
        if (f32) {
          for (let d = 0; d < headDim; d++) {
            let a = row[d];
            a = Math.fround(a + d0 * k[k0 + d]);
            a = Math.fround(a + d1 * k[k1 + d]);
            a = Math.fround(a + d2 * k[k2 + d]);
            row[d] = Math.fround(a + d3 * k[k3 + d]);
          }
        } else {
          for (let d = 0; d < headDim; d++) row[d] = row[d] + d0 * k[k0 + d] + d1 * k[k1 + d] + d2 * k[k2 + d] + d3 * k[k3 + d];
        }
      }
      for (; j <= i; j++) {
        const ko = j * kvW + kh;
        const dj = ds[so + j];
        if (f32) for (let d = 0; d < headDim; d++) row[d] = Math.fround(row[d] + dj * k[ko + d]);
        else for (let d = 0; d < headDim; d++) row[d] += dj * k[ko + d];
      }
      for (let d = 0; d < headDim; d++) dq[qo + d] = row[d];
    }
    // dK_j += Σ_i dS_ij Q_i and dV_j += Σ_i P_ij dO_i, i in order (a KV head's query heads in head order, outside).
    for (let j = 0; j < t; j++) {
      const ko = j * kvW + kh;
      let i = j;
      for (; i + 3 < t; i += 4) {
        const q0 = i * qW + hq, q1 = q0 + qW, q2 = q1 + qW, q3 = q2 + qW;
        const d0 = ds[i * t + j], d1 = ds[(i + 1) * t + j], d2 = ds[(i + 2) * t + j], d3 = ds[(i + 3) * t + j];
        const pb = h * t * t + i * t + j;
        const p0 = probs[pb], p1 = probs[pb + t], p2 = probs[pb + 2 * t], p3 = probs[pb + 3 * t];
        if (f32) {
          for (let d = 0; d < headDim; d++) {
            let a = dk[ko + d];
            a = Math.fround(a + d0 * q[q0 + d]);
            a = Math.fround(a + d1 * q[q1 + d]);
            a = Math.fround(a + d2 * q[q2 + d]);
            dk[ko + d] = a + d3 * q[q3 + d];
            let b = dv[ko + d];
            b = Math.fround(b + p0 * dOut[q0 + d]);
            b = Math.fround(b + p1 * dOut[q1 + d]);
            b = Math.fround(b + p2 * dOut[q2 + d]);
            dv[ko + d] = b + p3 * dOut[q3 + d];
          }
        } else {
          for (let d = 0; d < headDim; d++) {
            dk[ko + d] = dk[ko + d] + d0 * q[q0 + d] + d1 * q[q1 + d] + d2 * q[q2 + d] + d3 * q[q3 + d];
            dv[ko + d] = dv[ko + d] + p0 * dOut[q0 + d] + p1 * dOut[q1 + d] + p2 * dOut[q2 + d] + p3 * dOut[q3 + d];
          }
        }
      }
      for (; i < t; i++) {
        const qo = i * qW + hq;
        const di = ds[i * t + j];
        const p = probs[h * t * t + i * t + j];
        for (let d = 0; d < headDim; d++) {
          dk[ko + d] += di * q[qo + d];
          dv[ko + d] += p * dOut[qo + d];
        }
      }
    }
  }
  return { dq, dk, dv };
}
