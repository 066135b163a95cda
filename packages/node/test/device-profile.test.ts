import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernelRuntime, loadKernelModule, type KernelRuntime } from '@edge-node/kernels';
import { measureDevice } from '../src/cluster/device-profile.js';
import { measureFixedCosts } from '../src/cluster/device-fixed-costs.js';
import { kernelBackend } from '../src/engine/kernel-backend.js';

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
    // The cache type the node keeps travels with the profile (the planner counts the widest of a ring's).
    expect(p.kvCache).toBe('f16');
    // The decode product's rounds and how far apart they were.
    expect(p.decodeSpread).toBeGreaterThanOrEqual(0);
    expect(Number.isFinite(p.decodeSpread)).toBe(true);
  });

  it('measures the fixed costs of a step and a token: positive, a step at least a token, and well under a heartbeat', async () => {
    const p = await measureDevice({ runtime, memoryBudgetBytes: 1e9, budgetMs: 200 });
    expect(p.stepOverheadMs).toBeGreaterThan(0);
    expect(p.tokenOverheadMs).toBeGreaterThan(0);
    // A step decodes one frame and encodes one; a token encodes one.
    expect(p.stepOverheadMs!).toBeGreaterThanOrEqual(p.tokenOverheadMs!);
    // The wake-up is part of a token's cost, which a coordinator computing its token's last stage itself does not pay.
    expect(p.wakeMs).toBeGreaterThanOrEqual(0);
    expect(p.wakeMs!).toBeLessThanOrEqual(p.tokenOverheadMs!);
    expect(p.stepOverheadMs!).toBeLessThan(250);
    // A pass after an idle moment costs at least as much as back to back, and not a heartbeat more.
    expect(p.passOverheadMs).toBeGreaterThanOrEqual(0);
    expect(p.passOverheadMs!).toBeLessThan(250);
  });

  it('a rejection of `between` stops the measurement with its error (the node has work)', async () => {
    let calls = 0;
    const between = async () => {
      if (++calls > 25) throw new Error('work arrived');
    };
    await expect(measureDevice({ runtime, memoryBudgetBytes: 1e9, budgetMs: 50, between })).rejects.toThrow('work arrived');
  });

  it('the fixed costs\' own measurement stops at a rejection of `between` too', async () => {
    let calls = 0;
    const between = async () => {
      if (++calls > 3) throw new Error('work arrived');
    };
    await expect(measureFixedCosts(between)).rejects.toThrow('work arrived');
    expect(calls).toBe(4);
  });

  it('says the KV cache type the node computes with', async () => {
    const p = await measureDevice({ compute: kernelBackend(runtime, { kvCache: 'q8_0' }), memoryBudgetBytes: 1e9, budgetMs: 200 });
    expect(p.kvCache).toBe('q8_0');
  });
});

describe('measureDevice by weight type', () => {
  it('times the kernel of the type asked for: a K-quant and F32 give their own figures', async () => {
    const runtime = await createKernelRuntime({ threads: 1 });
    try {
      const q4k = await measureDevice({ runtime, weightType: 'Q4_K', budgetMs: 600 });
      const f32 = await measureDevice({ runtime, weightType: 'F32', budgetMs: 600 });
      for (const p of [q4k, f32]) {
        expect(p.gflopsDecode).toBeGreaterThan(0.5);
        expect(Number.isFinite(p.memBandwidthGBps) && p.memBandwidthGBps > 0).toBe(true);
      }
      // F32 weights are 7x the bytes of Q4_K per value: the same FLOPs stream far more bytes.
      expect(f32.memBandwidthGBps / f32.gflopsDecode).toBeGreaterThan((q4k.memBandwidthGBps / q4k.gflopsDecode) * 3);
    } finally {
      await runtime.close();
    }
  });
});
