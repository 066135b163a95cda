import type { Vec } from './vec.js';

/** Which dimensions of a head rotate together: (2i, 2i+1) as GGUF llama stores Q/K, or (i, i + d/2) as HF and qwen2. */
export type RopePairs = 'interleaved' | 'half';

/** Where RoPE acts: `heads` heads of headDim at the start of each row of width `stride`. */
export interface RopeShape {
  rows: number;
  stride: number;
  heads: number;
  headDim: number;
  pairs: RopePairs;
}

/**
 * cos then sin of position·f_i per row, computed in f64 and rounded to x's precision as the engine's table is
 * (pass-scratch.ts), so the rotation is the one the engine applies.
 */
export function ropeTable(positions: readonly number[], freqs: Float64Array, like: Vec): Vec {
  const half = freqs.length;
  const t = like instanceof Float64Array ? new Float64Array(positions.length * 2 * half) : new Float32Array(positions.length * 2 * half);
  positions.forEach((pos, r) => {
    for (let i = 0; i < half; i++) {
      t[r * 2 * half + i] = Math.cos(pos * freqs[i]);
      t[r * 2 * half + half + i] = Math.sin(pos * freqs[i]);
    }
  });
  return t;
}

/** Rotates each pair by its angle, in place; `inverse` rotates back, which is also the backward (a rotation's transpose). */
export function ropeApply(x: Vec, shape: RopeShape, table: Vec, inverse = false): void {
  const { rows, stride, heads, headDim, pairs } = shape;
  const half = headDim / 2;
  const sign = inverse ? -1 : 1;
  for (let r = 0; r < rows; r++) {
    const t = r * headDim;
    for (let h = 0; h < heads; h++) {
      const p = r * stride + h * headDim;
      for (let i = 0; i < half; i++) {
        const c = table[t + i];
        const s = sign * table[t + half + i];
        const a = pairs === 'half' ? p + i : p + 2 * i;
        const b = pairs === 'half' ? a + half : a + 1;
        const x0 = x[a];
        const x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
      }
    }
  }
}
