/** How a verification is cut into parts for the ring (pipeline/verification-parts.ts): pure arithmetic. */
import { describe, expect, it } from 'vitest';
import { MIN_VERIFICATION_PART_ROWS, verificationParts } from '../src/pipeline/verification-parts.js';

describe('verificationParts', () => {
  it('cuts a long verification into as many parts as stages, each at least the fewest rows, the larger first', () => {
    expect(verificationParts(17, 3)).toEqual([9, 8]);
    expect(verificationParts(17, 3, 4)).toEqual([6, 6, 5]);
    expect(verificationParts(17, 5, 4)).toEqual([5, 4, 4, 4]);
    expect(verificationParts(13, 2)).toEqual([7, 6]);
  });

  it('keeps one frame where a part would be too small, and on one stage', () => {
    expect(verificationParts(2 * MIN_VERIFICATION_PART_ROWS - 1, 3)).toEqual([2 * MIN_VERIFICATION_PART_ROWS - 1]);
    expect(verificationParts(17, 1)).toEqual([17]);
    expect(verificationParts(1, 3)).toEqual([1]);
  });

  it('covers every row once, in order, for any size', () => {
    for (let rows = 1; rows <= 17; rows++) {
      for (let stages = 1; stages <= 6; stages++) {
        const parts = verificationParts(rows, stages);
        expect(parts.reduce((a, b) => a + b, 0)).toBe(rows);
        expect(parts.length).toBeLessThanOrEqual(Math.max(1, stages));
        expect([...parts].sort((a, b) => b - a)).toEqual(parts);
        if (parts.length > 1) expect(Math.min(...parts)).toBeGreaterThanOrEqual(MIN_VERIFICATION_PART_ROWS);
      }
    }
  });

  it('refuses sizes that are not rows', () => {
    expect(() => verificationParts(0, 3)).toThrow(RangeError);
    expect(() => verificationParts(2.5, 3)).toThrow(RangeError);
    expect(() => verificationParts(17, 3, 0)).toThrow(RangeError);
  });
});
