import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { claimChunk, claimGen, claimNext, claimWord, CONTROL_BYTES, controlViews, Ctl, GEN_MASK, MAX_CHUNKS, planChunkSize, publishJob } from '../src/thread-control.js';

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

describe('publishJob and claimChunk', () => {
  const job = (chunks: number) => ({ arena: 0, fn: 1, args: [1, 2, 3], rangeAt: 1, count: chunks * 8, chunkSize: 8, chunks });

  it('a thread that read a generation claims its chunks, each once, and none of another generation', () => {
    const v = controlViews(new SharedArrayBuffer(CONTROL_BYTES));
    publishJob(v, 7, job(3));
    expect(Atomics.load(v.ctl, Ctl.Gen)).toBe(7);
    expect([claimChunk(v.ctl, 7, 3), claimChunk(v.ctl, 7, 3), claimChunk(v.ctl, 7, 3), claimChunk(v.ctl, 7, 3)]).toEqual([0, 1, 2, -1]);
    expect(claimChunk(v.ctl, 6, 3)).toBe(-1);
  });

  it('a late thread that reads the next job\'s words while they are written finds no chunk of the job it woke for', () => {
    const v = controlViews(new SharedArrayBuffer(CONTROL_BYTES));
    publishJob(v, 1, job(2));
    // The caller took both chunks of job 1 (a worker read generation 1 and was preempted before reading its words).
    claimChunk(v.ctl, 1, 2);
    claimChunk(v.ctl, 1, 2);
    // With job 1's claim word left as it was, a chunk count read from the next job (5) finds "chunk 2" of job 1: the
    // torn job a worker ran when the words were rewritten before the claim word.
    expect(claimChunk(new Int32Array(v.ctl.slice()), 1, 5)).toBe(2);
    // publishJob moves the claim word first: from then on, whatever job 2's words the late thread reads, no claim.
    const words: number[] = [];
    const ctl = v.ctl;
    const watched = { ...v, args: { set: (a: readonly number[]) => words.push(claimChunk(ctl, 1, 5), ...a) } as unknown as Float64Array };
    publishJob(watched, 2, job(5));
    expect(words[0]).toBe(-1); // claimed while job 2's arguments were being written
    expect(claimChunk(ctl, 1, 5)).toBe(-1);
    expect(claimChunk(ctl, 2, 5)).toBe(0);
  });
});
