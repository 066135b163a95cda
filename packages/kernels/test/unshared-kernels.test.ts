/**
 * kernels-unshared.wasm, the build a page without cross-origin isolation runs (no SharedArrayBuffer there): it links
 * only against a plain memory, the shared build only against a shared one, and both compute the same bits.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { KERNEL_UNSHARED_WASM_URL, KERNEL_WASM_URL, KernelArena, ggmlTypeByName } from '../src/index.js';

const memory = (shared: boolean) => new WebAssembly.Memory({ initial: 64, maximum: 1024, shared });

describe('the unshared kernels build', () => {
  it('links to a plain memory (the shared build does not) and dequantises Q8_0 bit for bit like the shared build', async () => {
    const shared = await WebAssembly.compile(new Uint8Array(await readFile(KERNEL_WASM_URL)));
    const unshared = await WebAssembly.compile(new Uint8Array(await readFile(KERNEL_UNSHARED_WASM_URL)));
    expect(() => new KernelArena(shared, memory(false), 0)).toThrow(WebAssembly.LinkError);
    expect(() => new KernelArena(unshared, memory(true), 0)).toThrow(WebAssembly.LinkError);

    const q8 = ggmlTypeByName('Q8_0')!;
    const blocks = 64;
    const src = new Uint8Array(blocks * q8.typeSize);
    for (let i = 0; i < src.length; i++) src[i] = (i * 37 + 11) & 0xff;
    for (let b = 0; b < blocks; b++) src.set([0x00, 0x2c], b * q8.typeSize); // f16 scale 0.0625: no NaN/Inf
    const run = (arena: KernelArena) => {
      const s = arena.alloc(src.length);
      const d = arena.alloc(blocks * q8.blockSize * 4);
      new Uint8Array(arena.memory.buffer, s, src.length).set(src);
      arena.kernels.dequant(q8.id, s, d, blocks * q8.blockSize);
      return new Float32Array(arena.memory.buffer.slice(d, d + blocks * q8.blockSize * 4));
    };
    const a = run(new KernelArena(shared, memory(true), 0));
    const b = run(new KernelArena(unshared, memory(false), 0));
    expect(a.some((x) => x !== 0)).toBe(true);
    expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
  });
});
