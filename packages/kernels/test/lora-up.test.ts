/**
 * lora_up (assembly/ops/lora.ts), LoRA's B product scaled and added in place: the same bits as a scalar f32
 * reference that sums over the rank in order, for ragged widths (SIMD lanes and the scalar tail), ranks 1–64, one or
 * many rows and a row stride wider than the output; a row's bits alone or in a batch; and the relaxed build's bits.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { detectWasmFeatures, KERNEL_RELAXED_UNSHARED_WASM_URL, KERNEL_UNSHARED_WASM_URL, KernelArena } from '../src/index.js';
import { rng } from './support/seeded-random.js';

async function arenaOf(url: URL): Promise<KernelArena> {
  const module = await WebAssembly.compile(new Uint8Array(await readFile(url)));
  return new KernelArena(module, new WebAssembly.Memory({ initial: 256, maximum: 65536 }), 0);
}

interface Case {
  rank: number;
  width: number;
  rows: number;
  stride: number;
  scale: number;
}

/** out after lora_up in `arena`, from the same inputs every time (seeded). */
function run(arena: KernelArena, c: Case, seed: number, rowsRun = c.rows, rowOffset = 0): Float32Array {
  const next = rng(seed);
  const bt = Float32Array.from({ length: c.rank * c.width }, () => next() * 2 - 1);
  const u = Float32Array.from({ length: c.rows * c.rank }, () => next() * 4 - 2);
  const out = Float32Array.from({ length: c.rows * c.stride }, () => next() - 0.5);
  const p = (values: Float32Array): number => {
    const ptr = arena.alloc(values.length * 4);
    arena.f32(ptr, values.length).set(values);
    return ptr;
  };
  const [bp, up, op] = [p(bt), p(u), p(out)];
  const acc = p(new Float32Array(c.width).fill(Number.NaN));
  arena.kernels.lora_up(bp, c.rank, c.width, up + rowOffset * c.rank * 4, rowsRun, c.scale, op + rowOffset * c.stride * 4, c.stride, acc);
  const got = Float32Array.from(arena.f32(op, out.length));
  for (const ptr of [acc, op, up, bp]) arena.release(ptr);
  return got;
}

/** The scalar reference: Σ_k in order in f32, times scale, plus out, each rounded to f32. */
function reference(c: Case, seed: number): Float32Array {
  const f = Math.fround;
  const next = rng(seed);
  const bt = Float32Array.from({ length: c.rank * c.width }, () => next() * 2 - 1);
  const u = Float32Array.from({ length: c.rows * c.rank }, () => next() * 4 - 2);
  const out = Float32Array.from({ length: c.rows * c.stride }, () => next() - 0.5);
  for (let i = 0; i < c.rows; i++) {
    for (let j = 0; j < c.width; j++) {
      let acc = 0;
      for (let k = 0; k < c.rank; k++) acc = f(acc + f(u[i * c.rank + k] * bt[k * c.width + j]));
      out[i * c.stride + j] = f(out[i * c.stride + j] + f(f(c.scale) * acc));
    }
  }
  return out;
}

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

const CASES: Case[] = [
  { rank: 1, width: 4, rows: 1, stride: 4, scale: 1 },
  { rank: 8, width: 67, rows: 3, stride: 80, scale: 2 },
  { rank: 16, width: 172, rows: 9, stride: 344, scale: 0.5 },
  { rank: 64, width: 1027, rows: 2, stride: 1027, scale: -1.25 },
  { rank: 3, width: 2, rows: 5, stride: 7, scale: 3 },
];

describe('lora_up', () => {
  it('gives the bits of an f32 reference summing over the rank in order, and leaves the stride’s other columns alone', async () => {
    const arena = await arenaOf(KERNEL_UNSHARED_WASM_URL);
    CASES.forEach((c, n) => expect(bits(run(arena, c, 100 + n)), JSON.stringify(c)).toEqual(bits(reference(c, 100 + n))));
  });

  it('gives a row the same bits computed alone as in its batch', async () => {
    const arena = await arenaOf(KERNEL_UNSHARED_WASM_URL);
    const c = CASES[2];
    const batch = run(arena, c, 7);
    const alone = run(arena, c, 7, 1, 4);
    expect(bits(alone.subarray(4 * c.stride, 5 * c.stride))).toEqual(bits(batch.subarray(4 * c.stride, 5 * c.stride)));
  });

  it.skipIf(!detectWasmFeatures().relaxedSimd || Number(process.versions.node.split('.')[0]) < 22)('gives the same bits in the relaxed-SIMD build', async () => {
    const [simd, relaxed] = await Promise.all([arenaOf(KERNEL_UNSHARED_WASM_URL), arenaOf(KERNEL_RELAXED_UNSHARED_WASM_URL)]);
    CASES.forEach((c, n) => expect(bits(run(relaxed, c, 200 + n))).toEqual(bits(run(simd, c, 200 + n))));
  });
});
