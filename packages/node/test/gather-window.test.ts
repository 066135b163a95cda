import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GATHER_MAX_MS, GATHER_SHARE, gatherWaitMs, type GatherState } from '../src/engine/gather-window.js';

const state = (over: Partial<GatherState>): GatherState => ({
  now: 1002,
  lastStepEnd: 1000,
  lastStepMs: 100,
  expected: new Set(['a', 'b', 'c']),
  queued: new Set(['a']),
  ...over,
});

describe('gatherWaitMs', () => {
  it('waits until the window closes while a request of the last step is not back', () => {
    // Window: 10% of a 100 ms step = 10 ms after the step's end; 2 ms have passed.
    expect(gatherWaitMs(state({}))).toBeCloseTo(8, 9);
  });

  it('starts at once when every expected request is queued, when nothing is expected, or when the window has closed', () => {
    expect(gatherWaitMs(state({ queued: new Set(['a', 'b', 'c', 'd']) }))).toBe(0);
    expect(gatherWaitMs(state({ expected: new Set() }))).toBe(0);
    expect(gatherWaitMs(state({ now: 1010 }))).toBe(0);
  });

  it('never waits past a share of the step nor past the cap, and never a negative time', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1e4, noNaN: true }), fc.double({ min: 0, max: 1e5, noNaN: true }), fc.double({ min: 0, max: 50, noNaN: true }), (end, stepMs, after) => {
        const wait = gatherWaitMs(state({ lastStepEnd: end, lastStepMs: stepMs, now: end + after }));
        expect(wait).toBeGreaterThanOrEqual(0);
        const window = Math.min(GATHER_MAX_MS, GATHER_SHARE * stepMs);
        expect(wait).toBeLessThanOrEqual(Math.max(0, window - after) + 1e-6);
      }),
    );
  });
});
