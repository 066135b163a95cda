/** Training's small kernels: transpose_f32 (assembly/ops/transpose.ts) and scaled_add (assembly/ops/scaled-add.ts), against the JavaScript they replace. */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { KERNEL_UNSHARED_WASM_URL, KernelArena } from '../src/index.js';
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
