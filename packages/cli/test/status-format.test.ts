import { describe, expect, it } from 'vitest';
import type { ClusterStatus, MemberStatus } from '@edge-node/node';
import { formatClusterStatus } from '../src/commands/status.js';

const profile = { gflopsDecode: 4, gflopsPrefill: 15, memBandwidthGBps: 8, memoryBytes: 440e6, memorySource: '--memory-budget', runtime: 'node' as const, backend: 'tfjs-wasm' as const, isa: 'simd128', threads: 1, cores: 2, hostname: 'h', measuredAt: 1 };
const member = (name: string, load: MemberStatus['load'], effectiveGflops: number, p: MemberStatus['profile'] = profile): MemberStatus => ({
  peerId: `12D3KooW${name.repeat(8)}`,
  name,
  addresses: [],
  profile: p,
  load,
  effectiveGflops,
  stageInfo: { model: 'm', ranges: [[0, 7]] },
  lastSeenMsAgo: 100,
});

describe('edge-node status', () => {
  it('shows each device’s load, effective speed, budget, and the plan changes with their reasons', () => {
    const now = Date.now();
    const status: ClusterStatus = {
      self: member('a', { slowdown: 1, calibration: 1.5, promptCalibration: 2.5, source: 'stage', since: now, otherCpuCores: 0.4, availableMemoryBytes: 5e9, memoryBudgetBytes: 440e6, memoryReason: '' }, 2.67),
      peers: [
        member('b', { slowdown: 5.6, calibration: 1.4, promptCalibration: null, source: 'probe', since: now - 20_000, otherCpuCores: 1.2, availableMemoryBytes: 4e9, memoryBudgetBytes: 120e6, memoryReason: 'lowered to 120 MB at run time' }, 0.51),
        member('c', null, 4, { ...profile, backend: 'kernels', kvCache: 'q8_0' }),
      ],
      links: [],
      plan: null,
      planError: null,
      planHistory: [
        { at: now, from: 'x', to: 'y', cause: 'b busy: 5.6× slower for 3 s', moves: 'moved 7 layers to c; left out b', movedLayers: 7, predictedBeforeMs: 224.7, predictedAfterMs: 103.9, loadMs: 1800, reason: 'b busy: 5.6× slower for 3 s; moved 7 layers to c; left out b; predicted 224.7 → 103.9 ms/token' },
      ],
      planDecision: 'predicted gain 3 % (1.2 ms/token) is below the 20 % threshold',
      planPredictedNowMs: 104.2,
      lora: { file: '/a/style.gguf', id: '35ed40b2cc4c144bx1', alpha: 16, scale: 1, pairs: 35, ranks: [8] },
    };
    const text = formatClusterStatus(status);
    expect(text).toContain('load: quiet (stage), other processes 0.4 cores, 5.0 GB free, effective 2.67 GFLOP/s, runs at 0.67× its profile when quiet, prompts at 0.40×');
    expect(text).toMatch(/load: 5\.6× slower for 2\d s \(probe\), other processes 1\.2 cores, 4\.0 GB free, effective 0\.51 GFLOP\/s, runs at 0\.71× its profile when quiet, budget 0\.1 GB: lowered to 120 MB at run time/);
    expect(text).toContain('load: not announced yet');
    expect(text).toContain('node, tfjs-wasm simd128 × 1 threads of 2 cores, decode 4 GFLOP/s');
    // A node that announces its KV cache type has it shown (q8_0 holds the most context per byte).
    expect(text).toContain('node, kernels simd128 × 1 threads of 2 cores, KV cache q8_0, decode 4 GFLOP/s');
    expect(text).toContain('last check: predicted gain 3 % (1.2 ms/token) is below the 20 % threshold');
    expect(text).toContain('LoRA adapter: /a/style.gguf (id 35ed40b2cc4c144bx1, 35 pairs of rank 8, alpha 16, scale 1); every stage applies its slice');
    expect(formatClusterStatus({ ...status, lora: null })).not.toContain('LoRA');
    expect(text).toMatch(/Plan changes \(last 1\):\n {2}\d\d:\d\d:\d\d b busy: 5\.6× slower for 3 s; moved 7 layers to c; left out b; predicted 224\.7 → 103\.9 ms\/token \(layers loaded in 1\.8 s\)/);
  });
});
