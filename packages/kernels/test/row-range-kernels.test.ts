import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernelRuntime, ggmlTypeByName, type KernelRuntime } from '../src/index.js';
import { rng } from './support/seeded-random.js';

// The row-wise steps a prompt splits over threads (prepare_act_rows, swiglu_rows) must give, range by range, the
// bytes the whole-batch kernels give: threads may cut the rows anywhere.
describe('range kernels over rows', () => {
  let rt: KernelRuntime;
  beforeAll(async () => {
    rt = await createKernelRuntime({ threads: 2, minParallelWork: 0 });
  });
  afterAll(async () => {
    await rt?.close();
  });

  it('prepare_act_rows and swiglu_rows, split at any row and over two threads, equal the whole-batch kernels', async () => {
    const arena = await rt.createArena(8 << 20);
    try {
      const rows = 37, cols = 512, rand = rng(5);
      const x = arena.alloc(rows * cols * 4);
      arena.f32(x, rows * cols).set(Float32Array.from({ length: rows * cols }, () => rand() * 4));
      for (const name of ['Q8_0', 'Q4_K', 'Q6_K', 'Q4_1']) {
        const fmt = rt.actFormat(ggmlTypeByName(name)!);
        const bytes = arena.kernels.act_row_bytes(fmt, cols) * rows;
        const whole = arena.alloc(bytes), split = arena.alloc(bytes), threaded = arena.alloc(bytes);
        arena.kernels.prepare_act(fmt, x, rows, cols, whole);
        for (const [r0, r1] of [[0, 5], [5, 6], [6, 30], [30, rows]]) arena.kernels.prepare_act_rows(fmt, x, cols, split, r0, r1);
        rt.parallelFor(arena, 'prepare_act_rows', [fmt, x, cols, threaded], rows);
        expect(arena.bytes(split, bytes), name).toEqual(arena.bytes(whole, bytes));
        expect(arena.bytes(threaded, bytes), name).toEqual(arena.bytes(whole, bytes));
      }
      const n = 100, stride = 2 * n;
      const g = arena.alloc(rows * stride * 4);
      arena.f32(g, rows * stride).set(Float32Array.from({ length: rows * stride }, () => rand() * 8));
      const whole = arena.alloc(rows * n * 4), split = arena.alloc(rows * n * 4);
      arena.kernels.swiglu(g, g + n * 4, stride, whole, rows, n);
      rt.parallelFor(arena, 'swiglu_rows', [g, g + n * 4, stride, split, n], rows);
      expect(arena.f32(split, rows * n)).toEqual(arena.f32(whole, rows * n));
      expect(arena.f32(whole, rows * n).some((v) => v !== 0)).toBe(true);
    } finally {
      await rt.releaseArena(arena);
    }
  });
});
