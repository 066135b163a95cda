import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernelRuntime, loadKernelModule, type KernelRuntime } from '@edge-node/kernels';
import { measureDevice } from '../src/cluster/device-profile.js';

describe('measureDevice', () => {
  let runtime: KernelRuntime;
  beforeAll(async () => {
    // Compiling the kernels is a once-per-process cost, not part of the measurement.
    await loadKernelModule();
    runtime = await createKernelRuntime({ threads: 1 });
  });
  afterAll(async () => {
    await runtime.close();
  });

  it('measures the kernels’ product throughput and bandwidth with the node’s threads in under 2 s', async () => {
    const t0 = performance.now();
    const p = await measureDevice({ runtime, memoryBudgetBytes: 3 * 1024 ** 3 });
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(p.runtime).toBe('node');
    expect(p.threads).toBe(runtime.threads);
    expect(p.isa).toBe(runtime.isa);
    // Plausible ranges for any machine that can run a model at all (wasm SIMD: ~1-200 GFLOP/s, ~1-100 GB/s).
    expect(p.gflopsDecode).toBeGreaterThan(0.5);
    expect(p.gflopsDecode).toBeLessThan(1000);
    expect(p.gflopsPrefill).toBeGreaterThan(0.5);
    // A batch of rows reuses each weight it loads: prefill must beat decode per FLOP.
    expect(p.gflopsPrefill).toBeGreaterThan(p.gflopsDecode);
    expect(p.memBandwidthGBps).toBeGreaterThan(0.5);
    expect(p.memoryBytes).toBe(3 * 1024 ** 3);
    expect(p.memorySource).toBe('--memory-budget');
    expect(p.cores).toBeGreaterThan(0);
  });
});
