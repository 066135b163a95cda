import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SerialKernelRuntime, type KernelRuntime } from '../src/index.js';
import { rng } from './support/seeded-random.js';

// Two heads that share a KV head are computed together over F32 and F16 caches, each key and value converted once
// for both (assembly/ops/attention-float.ts). A head's bits must not depend on that: alone (a range of one head), as
// the first or second of a pair, or in a range that splits a group (threads split heads anywhere).
const KV_F32 = 0;
const KV_F16 = 1;

describe('attention heads computed in pairs', () => {
  let rt: KernelRuntime;
  beforeAll(async () => {
    rt = await SerialKernelRuntime.create();
  });
  afterAll(async () => {
    await rt?.close();
  });

  for (const kvType of [KV_F32, KV_F16]) {
    for (const [heads, kvHeads] of [[8, 8], [8, 4], [9, 3], [8, 2]] as const) {
      it(`${kvType === KV_F16 ? 'F16' : 'F32'} cache, ${heads} heads over ${kvHeads} KV heads: each head's bits alone, in pairs and in split ranges`, async () => {
        // 45 positions: not a multiple of the four scored side by side; headDim 72: a tail after 16-value groups.
        const nPos = 45, headDim = 72, kvDim = kvHeads * headDim;
        const rand = rng(heads * 31 + kvHeads + kvType);
        const q = Float32Array.from({ length: heads * headDim }, () => rand() * 3);
        const k = Float32Array.from({ length: nPos * kvDim }, () => rand());
        const v = Float32Array.from({ length: nPos * kvDim }, () => rand());
        const arena = await rt.createArena(8 << 20);
        try {
          const eb = kvType === KV_F16 ? 2 : 4;
          const qp = arena.alloc(q.byteLength), kp = arena.alloc(k.length * eb), vp = arena.alloc(v.length * eb);
          const tmp = arena.alloc(k.byteLength);
          arena.f32(qp, q.length).set(q);
          for (const [src, dst] of [[k, kp], [v, vp]] as const) {
            arena.f32(tmp, src.length).set(src);
            if (kvType === KV_F16) arena.kernels.to_f16(tmp, dst, src.length);
            else arena.bytes(dst, src.byteLength).set(arena.bytes(tmp, src.byteLength));
          }
          const out = arena.alloc(heads * headDim * 4), scores = arena.alloc(heads * nPos * 4);
          const run = (ranges: [number, number][]): Uint32Array => {
            arena.f32(out, heads * headDim).fill(NaN);
            for (const [h0, h1] of ranges) arena.kernels.attention(kvType, qp, kp, vp, nPos, heads, kvHeads, headDim, 0.125, out, scores, h0, h1);
            return Uint32Array.from(new Uint32Array(arena.memory.buffer, out, heads * headDim));
          };
          const alone = run(Array.from({ length: heads }, (_, h) => [h, h + 1] as [number, number]));
          expect(Array.from(new Float32Array(alone.buffer)).every(Number.isFinite)).toBe(true);
          expect(run([[0, heads]])).toEqual(alone);
          expect(run([[0, 3], [3, heads]])).toEqual(alone);
          expect(run([[0, 1], [1, 6], [6, heads]])).toEqual(alone);
        } finally {
          await rt.releaseArena(arena);
        }
      });
    }
  }
});
