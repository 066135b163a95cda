/** transpose_f32 (assembly/ops/transpose.ts): every value moved to its transposed place, for shapes below, at and across its 16 × 16 blocks. */
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
