/**
 * The kernels' switch over ggml types (assembly/index.ts) against the type table the host reads files with
 * (src/ggml-types.ts): every type the kernels multiply has the same block size in both, an activation format and a
 * product; every other type is refused. One definition checked against the other, as ggml's static_asserts do.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { detectWasmFeatures, ggmlRowBytes, ggmlTypeById, ggmlTypeByName, KERNEL_RELAXED_UNSHARED_WASM_URL, KERNEL_TYPE_NAMES, KERNEL_UNSHARED_WASM_URL, KernelArena } from '../src/index.js';

// The relaxed build only where this runtime has relaxed SIMD (Node ≥ 22).
const builds = detectWasmFeatures().relaxedSimd ? [KERNEL_UNSHARED_WASM_URL, KERNEL_RELAXED_UNSHARED_WASM_URL] : [KERNEL_UNSHARED_WASM_URL];

describe.each(builds.map((u) => [u.pathname.slice(u.pathname.lastIndexOf('/') + 1), u] as const))('%s', (_name, url) => {
  it('has the host table\'s block size, an activation format and a product for every kernel type, and no other', async () => {
    const module = await WebAssembly.compile(new Uint8Array(await readFile(url)));
    const arena = new KernelArena(module, new WebAssembly.Memory({ initial: 64, maximum: 65536 }), 0);
    const k = arena.kernels;
    for (const name of KERNEL_TYPE_NAMES) {
      const t = ggmlTypeByName(name)!;
      expect(k.block_bytes(t.id), name).toBe(t.typeSize);
      const fmt = k.act_format(t.id);
      expect(fmt, name).toBeGreaterThanOrEqual(0);
      // One row of two blocks (two super-blocks for K-quants) of zero weights multiplies to exactly 0.
      const cols = Math.max(t.blockSize, 32) * (t.blockSize === 256 ? 2 : 8);
      const w = arena.alloc(ggmlRowBytes(t, cols));
      const x = arena.alloc(cols * 4);
      arena.f32(x, cols).fill(0.5);
      const actBytes = fmt === 0 ? cols * 4 : k.act_row_bytes(fmt, cols);
      const act = fmt === 0 ? x : arena.alloc(actBytes);
      if (fmt !== 0) k.prepare_act(fmt, x, 1, cols, act);
      const out = arena.alloc(4);
      arena.f32(out, 1)[0] = Number.NaN;
      k.matmul(t.id, w, cols, 0, 1, act, actBytes, 1, out, 1);
      expect(arena.f32(out, 1)[0], name).toBe(0);
    }
    for (let id = 0; id < 64; id++) {
      const t = ggmlTypeById(id);
      if (t && (KERNEL_TYPE_NAMES as readonly string[]).includes(t.name)) continue;
      expect([k.block_bytes(id), k.act_format(id)], t?.name ?? `id ${id}`).toEqual([0, -1]);
    }
  });
});
