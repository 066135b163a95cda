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
  it('announces the best figures seen when idle, keeps the first memory budget, and skips busy moments', async () => {
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
      delaysMs: [1000, 2000, 3000],
      log: silentLogger,
    });
    await vi.advanceTimersByTimeAsync(1000);
    expect(announced.at(-1)).toMatchObject({ gflopsDecode: 10, memBandwidthGBps: 20, memoryBytes: 8e9 });
    await vi.advanceTimersByTimeAsync(1000);
    // Slower compute than the best so far, faster memory: only the faster figure moves.
    expect(announced.at(-1)).toMatchObject({ gflopsDecode: 10, memBandwidthGBps: 25 });
    busy = true;
    await vi.advanceTimersByTimeAsync(1000);
    expect(announced).toHaveLength(2);
    expect(measurements).toHaveLength(1);
    refiner.stop();
  });
});
