import { describe, expect, it } from 'vitest';
import { SlowdownEstimator, announcedSlowdown, memoryPressureCap } from '../src/cluster/device-load.js';

describe('SlowdownEstimator', () => {
  it('reads 1 on a quiet device whatever the prediction error, and about 4 when compute takes 4× longer', () => {
    const e = new SlowdownEstimator({ timeConstantMs: 2000 });
    let t = 0;
    for (let i = 0; i < 20; i++) e.add((t += 100), 13 + (i % 3), 10); // the profile predicts 10 ms; it takes 13-15
    expect(e.slowdown()!).toBeLessThan(1.2);
    expect(e.calibration()!).toBeGreaterThan(1.25); // the profile predicts 10 ms; the quiet device takes 13-15
    expect(e.calibration()!).toBeLessThan(1.5);
    for (let i = 0; i < 100; i++) e.add((t += 100), 56, 10); // 10 s at 4× the quiet time
    expect(e.slowdown()!).toBeGreaterThan(3.5);
    expect(e.slowdown()!).toBeLessThan(4.5);
  });

  it('a short spike barely moves it', () => {
    const e = new SlowdownEstimator({ timeConstantMs: 3000 });
    let t = 0;
    for (let i = 0; i < 30; i++) e.add((t += 100), 10, 10);
    e.add((t += 100), 100, 10); // one run 10× slower
    expect(e.slowdown()!).toBeLessThan(1.3);
  });

  it('on a small model, a few runs preempted for milliseconds are not a busy device', () => {
    const e = new SlowdownEstimator();
    // A stories260K step: 0.15 ms, five of them in a millisecond of the clock, for a second.
    for (let i = 0; i < 5000; i++) e.add(Math.floor(i * 0.2), 0.15, 0.15);
    // Three runs that lost the core for 20 ms each (a neighbour's probe): 60 ms of a second.
    let t = 1000;
    for (let i = 0; i < 3; i++) e.add((t += 20), 20, 0.15);
    expect(e.slowdown()!).toBeLessThan(1.2);
    // A lasting slowdown of the same runs still shows within the time constant.
    for (let i = 0; i < 20000; i++) e.add(Math.floor(t + i * 0.6), 0.6, 0.15);
    expect(e.slowdown()!).toBeGreaterThan(3);
  });

  it('rescaled for a re-measured profile, keeps its slowdown and moves its calibration with the predictions', () => {
    const e = new SlowdownEstimator({ timeConstantMs: 1000 });
    let t = 0;
    for (let i = 0; i < 20; i++) e.add((t += 100), 5, 10); // quiet: half the old profile's prediction
    // The profile is re-measured 2× faster: it now predicts 5 ms for the same run.
    e.rescale(10 / 5);
    expect(e.calibration()!).toBeCloseTo(1, 5);
    expect(e.slowdown()!).toBeCloseTo(1, 5);
    for (let i = 0; i < 50; i++) e.add((t += 100), 100, 5); // then throttled: 20× its quiet time
    expect(e.calibration()!).toBeCloseTo(1, 5);
    expect(e.slowdown()!).toBeGreaterThan(15);
  });

  it('calibrates to the mean of a quiet device with stalls, not to its typical run', () => {
    const e = new SlowdownEstimator({ timeConstantMs: 4000 });
    let t = 0;
    // Every tenth run stalls at 4×: the mean run is 1.3× the prediction, the typical one 1×.
    for (let i = 0; i < 200; i++) e.add((t += 20), i % 10 === 9 ? 40 : 10, 10);
    expect(e.slowdown()!).toBeLessThan(1.5);
    expect(e.calibration()!).toBeGreaterThan(1.2);
    expect(e.calibration()!).toBeLessThan(1.4);
  });

  it('keeps a throttle out of its calibration, the runs at its start too', () => {
    const e = new SlowdownEstimator({ timeConstantMs: 4000 });
    let t = 0;
    // Fewer quiet runs than a block: the throttle starts while the first block is open.
    for (let i = 0; i < 20; i++) e.add((t += 20), 12, 10);
    for (let i = 0; i < 200; i++) e.add((t += 20), 240, 10); // throttled to 1/20
    expect(e.slowdown()!).toBeGreaterThan(10);
    expect(e.calibration()!).toBeCloseTo(1.2, 5);
  });

  it('calibrates to its recent blocks: a lasting mild load enters, runs announced busy do not', () => {
    const e = new SlowdownEstimator({ timeConstantMs: 4000 });
    let t = 0;
    const block = (ms: number, announcedBusy = false) => {
      for (let i = 0; i < 32; i++) e.add((t += 10), ms, 10, announcedBusy);
    };
    // Of two blocks, the quicker (a warm-up's slower block is not what the stage costs); the last block closed is held
    // back until the next one closes.
    block(18);
    block(10);
    block(10);
    expect(e.calibration()!).toBeCloseTo(1, 5);
    // Of more, their mean less the slowest: the warm-up's block is out, stalls in the others count.
    block(10);
    block(12);
    block(10);
    expect(e.calibration()!).toBeCloseTo((10 + 10 + 10 + 12) / 4 / 10, 5);
    // A device 1.4× slower from now on (not announced busy) costs that once its blocks are the recent ones.
    for (let i = 0; i < 9; i++) block(14);
    expect(e.calibration()!).toBeCloseTo(1.4, 5);
    // Announced busy at 2.5× (its slowdown holds that): those runs stay out, whatever their number.
    for (let i = 0; i < 10; i++) block(25, true);
    expect(e.calibration()!).toBeCloseTo(1.4, 5);
  });

  it('prices a device that grew slower in steps once: calibration × announced slowdown is what its runs take', () => {
    // As DeviceWatch uses it: runs are left out of the calibration while the announced slowdown is above 1.
    const e = new SlowdownEstimator({ timeConstantMs: 4000 });
    let t = 0;
    let announced = 1;
    const runs = (n: number, ms: number) => {
      for (let i = 0; i < n; i++) {
        e.add((t += 25), ms, 10, announced > 1);
        announced = announcedSlowdown(announced, e.slowdown()!);
      }
    };
    runs(300, 10);
    expect(e.calibration()! * announced).toBeCloseTo(1, 5);
    // A lasting 1.4× (below the busy level) enters the calibration.
    runs(2000, 14);
    expect(e.calibration()! * announced).toBeCloseTo(1.4, 5);
    // Then 1.6×, 1.14× the calibration: read against the quickest moment (1×), the device was announced busy at 1.6
    // on top of the calibration's 1.4 and priced at 2.24×.
    runs(2000, 16);
    expect(e.calibration()! * announced).toBeGreaterThan(1.6 / 1.1);
    expect(e.calibration()! * announced).toBeLessThan(1.6 * 1.1);
  });

  it('says nothing before it has samples', () => {
    const e = new SlowdownEstimator();
    expect(e.slowdown()).toBeNull();
    e.add(0, 10, 10);
    expect(e.slowdown()).toBeNull();
  });
});

describe('announcedSlowdown', () => {
  it('announces changes beyond the deadband only, and a return to quiet always', () => {
    expect(announcedSlowdown(1, 1.4)).toBe(1); // below the quiet level
    expect(announcedSlowdown(1, 3.1)).toBe(3.1);
    expect(announcedSlowdown(3.1, 3.5)).toBe(3.1); // within 30 %
    expect(announcedSlowdown(3.1, 5)).toBe(5);
    expect(announcedSlowdown(3.1, 1.2)).toBe(1);
  });

  it('has hysteresis around the quiet level, so noise near it does not flip the announcement', () => {
    expect(announcedSlowdown(1, 1.55)).toBe(1.55);
    expect(announcedSlowdown(1.55, 1.4)).toBe(1.55); // not quiet until below 1.5 / √1.3 ≈ 1.32
    expect(announcedSlowdown(1.55, 1.3)).toBe(1);
    expect(announcedSlowdown(1, 1.45)).toBe(1);
  });
});

describe('memoryPressureCap', () => {
  const reserve = 100;
  it('cuts the budget by the shortfall, keeps it while the shortfall stays, cuts again if it grows, lifts it when memory is back', () => {
    let s = memoryPressureCap(null, { availableBytes: 500, heldBytes: 1000, reserveBytes: reserve });
    expect(s).toBeNull();
    s = memoryPressureCap(s, { availableBytes: 40, heldBytes: 1000, reserveBytes: reserve });
    expect(s).toEqual({ capBytes: 940, availableAtCut: 40 });
    // Layers shed, but a WebAssembly heap does not give memory back: no second cut for the same shortfall.
    s = memoryPressureCap(s, { availableBytes: 40, heldBytes: 900, reserveBytes: reserve });
    expect(s).toEqual({ capBytes: 940, availableAtCut: 40 });
    s = memoryPressureCap(s, { availableBytes: 10, heldBytes: 900, reserveBytes: reserve });
    expect(s).toEqual({ capBytes: 810, availableAtCut: 10 });
    s = memoryPressureCap(s, { availableBytes: 150, heldBytes: 800, reserveBytes: reserve });
    expect(s).toEqual({ capBytes: 810, availableAtCut: 10 });
    s = memoryPressureCap(s, { availableBytes: 250, heldBytes: 800, reserveBytes: reserve });
    expect(s).toBeNull();
  });
});
