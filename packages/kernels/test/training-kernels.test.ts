/**
 * Training's small kernels against the JavaScript they replace: transpose_f32 (assembly/ops/transpose.ts), scaled_add
 * (assembly/ops/scaled-add.ts), and the exponential (assembly/ops/exp-f64.ts against its twin src/exp-f64.ts) with
 * the softmax, SwiGLU and cross-entropy rows that take it.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { expF64, KERNEL_RELAXED_UNSHARED_WASM_URL, KERNEL_UNSHARED_WASM_URL, KernelArena } from '../src/index.js';
import { rng } from './support/seeded-random.js';

describe('transpose_f32', () => {
  it('gives [cols, rows] from [rows, cols], bit for bit', async () => {
    const module = await WebAssembly.compile(new Uint8Array(await readFile(KERNEL_UNSHARED_WASM_URL)));
    const arena = new KernelArena(module, new WebAssembly.Memory({ initial: 256, maximum: 65536 }), 0);
    const next = rng(5);
    for (const [rows, cols] of [[1, 1], [1, 7], [5, 1], [16, 16], [17, 33], [64, 8], [3, 1536]]) {
      const x = Float32Array.from({ length: rows * cols }, () => next() * 2 - 1);
      const src = arena.alloc(x.length * 4);
      const dst = arena.alloc(x.length * 4);
      arena.f32(src, x.length).set(x);
      arena.kernels.transpose_f32(src, rows, cols, dst);
      const t = arena.f32(dst, x.length);
      const want = new Float32Array(x.length);
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) want[j * rows + i] = x[i * cols + j];
      expect(Array.from(t)).toEqual(Array.from(want));
      arena.release(dst);
      arena.release(src);
    }
  });
});

describe('scaled_add', () => {
  it('gives JavaScript\'s `acc[i] += scale * p[i]` (and `= scale * p[i]`) on f32 arrays, bit for bit', async () => {
    const module = await WebAssembly.compile(new Uint8Array(await readFile(KERNEL_UNSHARED_WASM_URL)));
    const arena = new KernelArena(module, new WebAssembly.Memory({ initial: 256, maximum: 65536 }), 0);
    const next = rng(9);
    for (const n of [1, 2, 3, 31, 1536]) {
      for (const set of [0, 1]) {
        const acc = Float32Array.from({ length: n }, () => next() * 8 - 4);
        const p = Float32Array.from({ length: n }, () => (next() - 0.5) * 8);
        const scale = Math.fround(16 / 3);
        const want = acc.slice();
        for (let i = 0; i < n; i++) want[i] = set ? scale * p[i] : want[i] + scale * p[i];
        const [accP, pP] = [arena.alloc(n * 4), arena.alloc(n * 4)];
        arena.f32(accP, n).set(acc);
        arena.f32(pP, n).set(p);
        arena.kernels.scaled_add(accP, pP, n, scale, set);
        expect(Array.from(arena.f32(accP, n))).toEqual(Array.from(want));
        arena.release(pP);
        arena.release(accP);
      }
    }
  });
});

/** An arena of each build (SIMD128 and relaxed: the f64 lanes are the same code in both). */
async function arenas(): Promise<[string, KernelArena][]> {
  return Promise.all(
    ([['simd128', KERNEL_UNSHARED_WASM_URL], ['relaxed', KERNEL_RELAXED_UNSHARED_WASM_URL]] as const).map(async ([name, url]) => {
      const module = await WebAssembly.compile(new Uint8Array(await readFile(url)));
      return [name, new KernelArena(module, new WebAssembly.Memory({ initial: 256, maximum: 65536 }), 0)] as [string, KernelArena];
    }),
  );
}

const bits = (x: ArrayLike<number>) => Array.from(new BigUint64Array(Float64Array.from(x).buffer), (b) => b.toString(16));

describe('exp_f64', () => {
  const next = rng(11);
  const xs = [
    0, -0, 1, -1, 0.5, -0.5, 1e-300, -1e-300, Math.LN2 / 2, -Math.LN2 / 2, Math.LN2, 3 * Math.LN2 / 2, 709, 709.0000001, 710, -708,
    -708.0000001, -745.2, Infinity, -Infinity, NaN, 88.7, -103.9, 1e6, -1e6,
    ...Array.from({ length: 4000 }, () => (next() - 0.5) * 1450),
    ...Array.from({ length: 4000 }, () => (next() - 0.8) * 40),
  ];

  it('gives its TypeScript twin\'s bits in every lane and the scalar tail, on both builds', async () => {
    const want = bits(xs.map(expF64));
    for (const [name, arena] of await arenas()) {
      for (const n of [xs.length, xs.length - 1]) {
        const p = arena.alloc(n * 8);
        arena.bytes(p, n * 8).set(new Uint8Array(Float64Array.from(xs.slice(0, n)).buffer));
        arena.kernels.exp_f64(p, p, n);
        expect(bits(new Float64Array(arena.bytes(p, 8).buffer, p, n)), `${name}, ${n} values`).toEqual(want.slice(0, n));
        arena.release(p);
      }
    }
  });

  it('is within 5·10^-16 of Math.exp (relative) on [−708, 709], +∞ above, 0 below, NaN for NaN', () => {
    for (const x of xs) {
      const e = expF64(x), m = Math.exp(x);
      if (Number.isNaN(x)) expect(e).toBeNaN();
      else if (x > 709) expect(e).toBe(Infinity);
      else if (x < -708) expect(e).toBe(0);
      else expect(Math.abs(e - m) / m, `e^${x}`).toBeLessThanOrEqual(5e-16);
    }
  });
});

describe('attention_softmax', () => {
  it("gives the host loop's causal softmax with the twin exponential, bit for bit, 0 past the diagonal", async () => {
    const next = rng(13);
    for (const [name, arena] of await arenas()) {
      for (const [t, h] of [[1, 1], [2, 3], [7, 2], [33, 2]]) {
        const scores = Float64Array.from({ length: h * t * t }, () => (next() - 0.5) * 30);
        const want = new Float32Array(h * t * t);
        const wantScores = scores.slice();
        for (let row = 0; row < h * t; row++) {
          const i = row % t, so = row * t;
          let max = -Infinity;
          for (let j = 0; j <= i; j++) if (wantScores[so + j] > max) max = wantScores[so + j];
          let sum = 0;
          for (let j = 0; j <= i; j++) {
            const e = expF64(wantScores[so + j] - max);
            wantScores[so + j] = e;
            sum += e;
          }
          for (let j = 0; j <= i; j++) want[so + j] = wantScores[so + j] / sum;
        }
        const [sP, pP] = [arena.alloc(scores.length * 8), arena.alloc(want.length * 4)];
        arena.bytes(sP, scores.length * 8).set(new Uint8Array(scores.buffer));
        arena.f32(pP, want.length).fill(7);
        arena.kernels.attention_softmax(sP, pP, t, h);
        expect(Array.from(arena.f32(pP, want.length)), `${name}, t ${t}, ${h} heads`).toEqual(Array.from(want));
        arena.release(pP);
        arena.release(sP);
      }
    }
  });
});

describe('swiglu_train', () => {
  it("gives the host loop's silu(g)·u and 1 + e^−g with the twin exponential, bit for bit", async () => {
    const next = rng(17);
    for (const [name, arena] of await arenas()) {
      for (const n of [1, 2, 5, 1536]) {
        const g = Float32Array.from({ length: n }, () => (next() - 0.5) * 24);
        const u = Float32Array.from({ length: n }, () => (next() - 0.5) * 4);
        if (n > 2) g[2] = -800;
        const out = new Float32Array(n), den = new Float64Array(n);
        for (let i = 0; i < n; i++) {
          const d = 1 + expF64(-g[i]);
          den[i] = d;
          out[i] = (g[i] / d) * u[i];
        }
        const [gP, uP, oP, dP] = [arena.alloc(n * 4), arena.alloc(n * 4), arena.alloc(n * 4), arena.alloc(n * 8)];
        arena.f32(gP, n).set(g);
        arena.f32(uP, n).set(u);
        arena.kernels.swiglu_train(gP, uP, oP, dP, n);
        expect(Array.from(arena.f32(oP, n)), `${name}, ${n}`).toEqual(Array.from(out));
        expect(bits(new Float64Array(arena.bytes(dP, 8).buffer, dP, n)), `${name}, ${n}`).toEqual(bits(den));
        for (const p of [dP, oP, uP, gP]) arena.release(p);
      }
    }
  });
});

describe('exp_shifted', () => {
  it("gives the host loop's f32 exponentials of a shifted row and their f64 sum in order, bit for bit", async () => {
    const next = rng(19);
    for (const [name, arena] of await arenas()) {
      for (const n of [1, 2, 3, 513]) {
        const d = Float32Array.from({ length: n }, () => (next() - 0.5) * 40);
        const max = Math.max(...d);
        const want = d.slice();
        let sum = 0;
        for (let j = 0; j < n; j++) sum += want[j] = expF64(want[j] - max);
        const p = arena.alloc(n * 4);
        arena.f32(p, n).set(d);
        expect(arena.kernels.exp_shifted(p, n, max), `${name}, ${n}`).toBe(sum);
        expect(Array.from(arena.f32(p, n)), `${name}, ${n}`).toEqual(Array.from(want));
        arena.release(p);
      }
    }
  });
});
