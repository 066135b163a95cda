import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SerialKernelRuntime, type KernelRuntime } from '../src/index.js';
import { rng } from './support/seeded-random.js';

// The F16 cache's attention leaves the 2^112 of the f16 → f32 rebasing out of every load and folds it into the query
// and the attention weights (assembly/ops/attention.ts). Powers of two move exponents only, so an F16 cache must give
// the bits an F32 cache gives when both hold the same values: for queries of any size (a query of 2^15 or more takes
// a smaller factor, or q · 2^112 would overflow) and with subnormal halves among the values.
const KV_F32 = 0;
const KV_F16 = 1;

/** The value of f16 bits h. */
function halfValue(h: number): number {
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  const v = e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15);
  return h & 0x8000 ? -v : v;
}

/** Random f16 bits: normal values of varied size, some subnormals and zeros, both signs. */
function halves(n: number, rand: () => number): Uint16Array {
  return Uint16Array.from({ length: n }, () => {
    const r = rand() + 0.5;
    const sign = rand() < 0 ? 0x8000 : 0;
    if (r < 0.03) return sign;
    if (r < 0.08) return sign | (1 + Math.floor((rand() + 0.5) * 1022));
    return sign | ((3 + Math.floor((rand() + 0.5) * 24)) << 10) | Math.floor((rand() + 0.5) * 1023);
  });
}

describe('F16 KV cache attention', () => {
  let rt: KernelRuntime;
  beforeAll(async () => {
    rt = await SerialKernelRuntime.create();
  });
  afterAll(async () => {
    await rt?.close();
  });

  for (const qSize of [1, 3000, 70_000, 1e12]) {
    it(`gives an F32 cache's bits for the same values, queries of size ${qSize}`, async () => {
      const nPos = 45, heads = 6, kvHeads = 3, headDim = 64, kvDim = kvHeads * headDim;
      const rand = rng(qSize);
      const k16 = halves(nPos * kvDim, rand), v16 = halves(nPos * kvDim, rand);
      const q = Float32Array.from({ length: heads * headDim }, () => rand() * qSize);
      const arena = await rt.createArena(8 << 20);
      try {
        const run = (kvType: number, k: Uint16Array | Float32Array, v: Uint16Array | Float32Array): Float32Array => {
          const qp = arena.alloc(q.byteLength), kp = arena.alloc(k.byteLength), vp = arena.alloc(v.byteLength);
          const out = arena.alloc(heads * headDim * 4), scores = arena.alloc(heads * nPos * 4);
          arena.f32(qp, q.length).set(q);
          arena.bytes(kp, k.byteLength).set(new Uint8Array(k.buffer));
          arena.bytes(vp, v.byteLength).set(new Uint8Array(v.buffer));
          arena.f32(out, heads * headDim).fill(NaN);
          arena.kernels.attention(kvType, qp, kp, vp, nPos, heads, kvHeads, headDim, 0.125, out, scores, 0, heads);
          return Float32Array.from(arena.f32(out, heads * headDim));
        };
        const f16 = run(KV_F16, k16, v16);
        const f32 = run(KV_F32, Float32Array.from(k16, halfValue), Float32Array.from(v16, halfValue));
        expect(f16.every(Number.isFinite)).toBe(true);
        expect(new Uint32Array(f16.buffer)).toEqual(new Uint32Array(f32.buffer));
      } finally {
        await rt.releaseArena(arena);
      }
    });
  }
});
