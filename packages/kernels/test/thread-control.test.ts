import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { claimGen, claimNext, claimWord, GEN_MASK, MAX_CHUNKS, planChunkSize } from '../src/thread-control.js';

describe('thread control block', () => {
  it('plans chunks on multiples of the granule, about perThread per thread, never more than MAX_CHUNKS', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20_000_000 }), fc.integer({ min: 1, max: 64 }), fc.constantFrom(1, 4, 16), (count, threads, granule) => {
        const size = planChunkSize(count, threads, granule);
        expect(size % granule).toBe(0);
        expect(Math.ceil(count / size)).toBeLessThanOrEqual(MAX_CHUNKS);
        // Not needlessly coarse: at least min(count / granule, 4·threads) / 2 chunks (rounding to the granule halves at worst).
        expect(Math.ceil(count / size)).toBeGreaterThanOrEqual(Math.min(Math.floor(count / granule), 4 * threads, MAX_CHUNKS) / 2);
      }),
    );
    expect(planChunkSize(4096, 2, 16)).toBe(512);
    expect(planChunkSize(8, 2, 4)).toBe(4);
  });

  it('packs generation and next chunk into one claim word, across the sign bit', () => {
    for (const gen of [0, 1, 12345, GEN_MASK]) {
      for (const next of [0, 1, MAX_CHUNKS - 1]) {
        const w = claimWord(gen, next);
        expect(w).toBe(w | 0);
        expect([claimGen(w), claimNext(w)]).toEqual([gen, next]);
        expect([claimGen(w + 1), claimNext(w + 1)]).toEqual([gen, next + 1]);
      }
    }
  });
});
