import { describe, expect, it } from 'vitest';
import { PROBE_WINDOW_MS, probeSlowdown, recentRuns, type ProbeRun } from '../src/cluster/probe-slowdown.js';

/** Probe runs once a second from `from` (s) with wall times `ms`. */
const runsFrom = (from: number, ms: number[]): ProbeRun[] => ms.map((m, i) => ({ at: (from + i) * 1000, ms: m }));

describe('the idle probe\'s slowdown (fastest run of the window ÷ fastest ever)', () => {
  it('reads quiet again with the first fast run after a lift, though the window still holds throttled runs', () => {
    // 25 ms quiet; at 5 % of a core every run takes about 20×; lifted after the run at 9 s.
    const runs = runsFrom(0, [25, 26, 25, 500, 520, 480, 510, 530, 505, 490, 27, 26]);
    expect(probeSlowdown(runs, 25, 9_000)).toBeGreaterThan(15);
    expect(probeSlowdown(runs, 25, 10_000)).toBeCloseTo(27 / 25, 5);
  });

  it('stays busy while every run is held back (a quota or starvation holds back all of them)', () => {
    const runs = runsFrom(0, [80, 95, 70, 110, 85, 90]);
    for (let t = 1; t <= 5; t++) expect(probeSlowdown(runs, 25, t * 1000)).toBeGreaterThanOrEqual(70 / 25);
  });

  it('a shared machine\'s noise (other processes adding wall time to some runs) does not read busy', () => {
    const runs = runsFrom(0, [70, 28, 75, 60, 30, 66, 29]);
    for (let t = 1; t <= 6; t++) expect(probeSlowdown(runs, 25, t * 1000)!).toBeLessThan(1.25);
  });

  it('gives no figure from one run (a garbage collection is not a busy device), nor from runs older than the window', () => {
    expect(probeSlowdown([{ at: 0, ms: 400 }], 25, 0)).toBeNull();
    const runs = runsFrom(0, [400, 400]);
    expect(probeSlowdown(runs, 25, 1000)).toBe(16);
    expect(probeSlowdown(runs, 25, 1000 + PROBE_WINDOW_MS + 1)).toBeNull();
    expect(probeSlowdown(runs, Infinity, 1000)).toBeNull();
  });

  it('is never below 1 (the fastest run ever is the quiet figure) and keeps only the window\'s runs', () => {
    expect(probeSlowdown(runsFrom(0, [20, 22]), 25, 1000)).toBe(1);
    expect(recentRuns(runsFrom(0, [1, 2, 3, 4, 5, 6]), 5000, 2000).map((r) => r.ms)).toEqual([4, 5, 6]);
  });
});
