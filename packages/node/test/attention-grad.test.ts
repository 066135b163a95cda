/**
 * attention-grad.ts runs several sums side by side and the backward in three passes, for speed; each sum keeps its
 * terms' order and its f32 rounding, so it must give the bits of the plain one-loop form kept here (what it replaced,
 * and what the gradient checks in training-ops.test.ts were first made on) — f32 and f64, lengths that are and are not
 * multiples of the four sums at a time, grouped and ungrouped heads.
 */
import { describe, expect, it } from 'vitest';
import { createKernelRuntime, expF64 } from '@edge-node/kernels';
import { KernelGemm } from '../src/training/kernel-gemm.js';
import { attentionBackward, attentionForward, type AttentionShape } from '../src/training/attention-grad.js';
import { zerosLike, type Vec } from '../src/training/vec.js';
import { seeded } from './support/gradient-check.js';

/** The plain loops: one score, one output element, one gradient term at a time. */
function plainForward(q: Vec, k: Vec, v: Vec, sh: AttentionShape): { out: Vec; probs: Vec } {
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
        scores[j] = expF64(scores[j] - max);
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

function plainBackward(dOut: Vec, q: Vec, k: Vec, v: Vec, probs: Vec, sh: AttentionShape): { dq: Vec; dk: Vec; dv: Vec } {
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

function random(n: number, rand: () => number, f64: boolean): Vec {
  const a = Array.from({ length: n }, () => rand() - 0.5);
  return f64 ? Float64Array.from(a) : Float32Array.from(a);
}

/** Exact equality of every value (Object.is: a sign of zero counts) and of the array type. */
function sameBits(a: Vec, b: Vec): boolean {
  return a.constructor === b.constructor && a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
}

describe('attention: the fast loops give the plain loops\' bits', () => {
  for (const f64 of [false, true]) {
    it(`on ${f64 ? 'f64' : 'f32'} arrays`, () => {
      const rand = seeded(3);
      const shapes: [number, number, number][] = [[4, 2, 6], [9, 3, 64], [8, 4, 8], [2, 2, 3]];
      for (const t of [1, 2, 3, 4, 5, 7, 8, 13, 33]) {
        for (const [heads, kvHeads, headDim] of shapes) {
          const sh: AttentionShape = { t, heads, kvHeads, headDim };
          const q = random(t * heads * headDim, rand, f64);
          const k = random(t * kvHeads * headDim, rand, f64);
          const v = random(t * kvHeads * headDim, rand, f64);
          const dOut = random(t * heads * headDim, rand, f64);
          const fast = attentionForward(q, k, v, sh);
          const plain = plainForward(q, k, v, sh);
          expect(sameBits(fast.out, plain.out) && sameBits(fast.probs, plain.probs), JSON.stringify(sh)).toBe(true);
          const g = attentionBackward(dOut, q, k, v, fast.probs, sh);
          const p = plainBackward(dOut, q, k, v, plain.probs, sh);
          expect(sameBits(g.dq, p.dq) && sameBits(g.dk, p.dk) && sameBits(g.dv, p.dv), JSON.stringify(sh)).toBe(true);
        }
      }
    });
  }
});

describe('attention on the kernels', () => {
  it('forward and backward give the plain loops\' bits on f32 arrays (odd head sizes: the scalar tail beside the f64x2 lanes)', async () => {
    const runtime = await createKernelRuntime({ threads: 1 });
    try {
      const g = await KernelGemm.create(runtime);
      const rand = seeded(5);
      const shapes: [number, number, number][] = [[4, 2, 6], [9, 3, 64], [8, 8, 8], [2, 2, 3], [2, 1, 5]];
      // The last: a sequence long enough that the kernels take one head at a time (an 8 MiB block of scores).
      const cases = [1, 2, 3, 4, 5, 7, 8, 13, 33].flatMap((t) => shapes.map((s) => [t, ...s])).concat([[1100, 4, 2, 4]]);
      for (const [t, heads, kvHeads, headDim] of cases) {
        const sh: AttentionShape = { t, heads, kvHeads, headDim };
        const [q, dOut] = [random(t * heads * headDim, rand, false), random(t * heads * headDim, rand, false)];
        const [k, v] = [random(t * kvHeads * headDim, rand, false), random(t * kvHeads * headDim, rand, false)];
        const { out, probs } = plainForward(q, k, v, sh);
        const fwd = g.attentionForward(q, k, v, sh);
        expect(fwd.out).toBeInstanceOf(Float32Array);
        expect(sameBits(fwd.out, out) && sameBits(fwd.probs, probs), JSON.stringify(sh)).toBe(true);
        const mine = g.attentionBackward(dOut, q, k, v, probs, sh);
        const p = plainBackward(dOut, q, k, v, probs, sh);
        expect(mine.dq).toBeInstanceOf(Float32Array);
        expect(sameBits(mine.dq, p.dq) && sameBits(mine.dk, p.dk) && sameBits(mine.dv, p.dv), JSON.stringify(sh)).toBe(true);
      }
      await g.close();
    } finally {
      await runtime.close();
    }
  });
});
