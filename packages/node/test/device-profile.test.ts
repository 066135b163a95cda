import { describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/tf-backend.js';
import { measureDevice } from '../src/cluster/device-profile.js';

describe('measureDevice', () => {
  it('measures matmul throughput and bandwidth on the wasm backend in under 2 s', async () => {
    // Loading the wasm module is a once-per-process cost, not part of the measurement.
    await initBackend('wasm');
    const t0 = performance.now();
    const p = await measureDevice({ backend: 'wasm', memoryBudgetBytes: 3 * 1024 ** 3 });
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(p.backend).toBe('wasm');
    // Plausible ranges for any machine that can run a model at all (wasm SIMD: ~5-100 GFLOP/s, ~5-100 GB/s).
    expect(p.gflopsDecode).toBeGreaterThan(0.5);
    expect(p.gflopsDecode).toBeLessThan(1000);
    expect(p.gflopsPrefill).toBeGreaterThan(0.5);
    expect(p.memBandwidthGBps).toBeGreaterThan(0.5);
    expect(p.memoryBytes).toBe(3 * 1024 ** 3);
    expect(p.memorySource).toBe('--memory-budget');
    expect(p.cores).toBeGreaterThan(0);
  });
});
