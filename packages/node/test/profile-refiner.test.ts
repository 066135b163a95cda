import { afterEach, describe, expect, it, vi } from 'vitest';
import type { DeviceProfile } from '../src/cluster/device-profile.js';
import type { Membership } from '../src/cluster/membership.js';
import { refineProfile } from '../src/cluster/profile-refiner.js';
import { silentLogger } from '../src/network/node-logger.js';

const profile = (gflops: number, bandwidth: number, memoryBytes = 8e9): DeviceProfile => ({
  gflopsDecode: gflops,
  gflopsPrefill: gflops * 2,
  memBandwidthGBps: bandwidth,
  memoryBytes,
  memorySource: 'test',
  runtime: 'node',
  backend: 'kernels',
  isa: 'simd128',
  threads: 1,
  cores: 2,
  hostname: 'test',
  measuredAt: 0,
});

afterEach(() => vi.useRealTimers());

describe('refineProfile', () => {
  it('announces the best figures seen once idle long enough, keeps the first memory budget, and skips busy moments', async () => {
    vi.useFakeTimers();
    const announced: DeviceProfile[] = [];
    const membership = { setProfile: (p: DeviceProfile) => announced.push(p) } as unknown as Membership;
    const measurements = [profile(10, 20, 1e9), profile(7, 25), profile(30, 40)];
    let busy = false;
    const refiner = refineProfile({
      membership,
      initial: profile(5, 10),
      isBusy: () => busy,
      measure: async () => measurements.shift()!,
      delaysMs: [1000, 4000, 6000],
      idleBeforeMs: 2000,
      pollMs: 100,
      log: silentLogger,
    });
    // Due at 1 s, but the node has been idle (since start) only 1 s: it waits for 2 s.
    await vi.advanceTimersByTimeAsync(1500);
    expect(announced).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(600);
    expect(announced.at(-1)).toMatchObject({ gflopsDecode: 10, memBandwidthGBps: 20, memoryBytes: 8e9 });
    // Work from 3 s to 4.5 s: the one due at 4 s waits until 6.5 s.
    await vi.advanceTimersByTimeAsync(900);
    busy = true;
    await vi.advanceTimersByTimeAsync(1500);
    busy = false;
    await vi.advanceTimersByTimeAsync(1900);
    expect(announced).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(200);
    // Slower compute than the best so far, faster memory: only the faster figure moves.
    expect(announced.at(-1)).toMatchObject({ gflopsDecode: 10, memBandwidthGBps: 25 });
    busy = true;
    await vi.advanceTimersByTimeAsync(5000);
    expect(announced).toHaveLength(2);
    expect(measurements).toHaveLength(1);
    refiner.stop();
  });

  it('stops a measurement when work arrives, and takes it again once the node is idle again', async () => {
    vi.useFakeTimers();
    const announced: DeviceProfile[] = [];
    const membership = { setProfile: (p: DeviceProfile) => announced.push(p) } as unknown as Membership;
    let busy = false;
    let started = 0;
    let products = 0;
    const refiner = refineProfile({
      membership,
      initial: profile(5, 10),
      isBusy: () => busy,
      // Ten products, the node's loop turning between them; a request arrives during the first attempt.
      measure: async (between) => {
        started++;
        for (let i = 0; i < 10; i++) {
          products++;
          if (started === 1 && i === 3) busy = true;
          await between();
        }
        return profile(20, 30);
      },
      delaysMs: [0],
      idleBeforeMs: 1000,
      pollMs: 100,
      log: silentLogger,
    });
    await vi.advanceTimersByTimeAsync(1100);
    expect(started).toBe(1);
    expect(products).toBe(4);
    expect(announced).toHaveLength(0);
    busy = false;
    await vi.advanceTimersByTimeAsync(900);
    expect(started).toBe(1);
    await vi.advanceTimersByTimeAsync(300);
    expect(started).toBe(2);
    expect(announced.at(-1)).toMatchObject({ gflopsDecode: 20 });
    refiner.stop();
  });

  it('announces the least fixed costs seen, as it announces the best speeds', async () => {
    vi.useFakeTimers();
    const announced: DeviceProfile[] = [];
    const membership = { setProfile: (p: DeviceProfile) => announced.push(p) } as unknown as Membership;
    const withCosts = (step: number, token: number): DeviceProfile => ({ ...profile(5, 10), stepOverheadMs: step, tokenOverheadMs: token });
    const measurements = [withCosts(0.3, 0.9), withCosts(0.5, 0.2)];
    const refiner = refineProfile({
      membership,
      initial: withCosts(1.2, 1),
      isBusy: () => false,
      measure: async () => measurements.shift()!,
      delaysMs: [100, 200],
      idleBeforeMs: 0,
      pollMs: 50,
      log: silentLogger,
    });
    await vi.advanceTimersByTimeAsync(400);
    expect(announced).toHaveLength(2);
    expect(announced[0]).toMatchObject({ stepOverheadMs: 0.3, tokenOverheadMs: 0.9 });
    expect(announced[1]).toMatchObject({ stepOverheadMs: 0.3, tokenOverheadMs: 0.2 });
    refiner.stop();
  });
});
