import type { Vec } from '../../src/training/vec.js';

/** A seeded uniform in [-scale, scale): the same inputs every run. */
export function seeded(seed: number): (scale?: number) => number {
  let s = seed >>> 0;
  return (scale = 1) => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 * scale;
  };
}

export function randomF64(n: number, rand: (scale?: number) => number, scale = 1): Float64Array {
  return Float64Array.from({ length: n }, () => rand(scale));
}

/** ‖a − b‖ / ‖b‖: the error of a whole gradient relative to its size. */
export function relativeError(a: Vec, b: Vec): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < b.length; i++) {
    diff += (a[i] - b[i]) ** 2;
    norm += b[i] ** 2;
  }
  return Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-30);
}

/** Σ y·weights: a scalar of an op's output, so any output's gradient is weights. */
export function dot(y: Vec, weights: Vec): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i] * weights[i];
  return s;
}

/**
 * Central differences in float64 of loss(x) over the entries `which` of x (all when omitted), with step h; x is
 * restored afterwards.
 */
export function finiteDifferences(x: Float64Array, loss: () => number, h = 1e-5, which?: readonly number[]): Float64Array {
  const g = new Float64Array(x.length);
  for (const i of which ?? x.keys()) {
    const keep = x[i];
    x[i] = keep + h;
    const up = loss();
    x[i] = keep - h;
    const down = loss();
    x[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}
