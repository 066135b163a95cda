/**
 * The KV cache a cluster plan counts: each node keeps its own type (--kv-cache, announced in its profile) and the
 * partitioner counts one for all stages, so the plan takes the widest of the coordinator's and the stage nodes'.
 */
import { describe, expect, it } from 'vitest';
import type { DeviceProfile } from '../src/cluster/device-profile.js';
import type { ClusterMember } from '../src/cluster/membership.js';
import type { KvCacheType } from '../src/engine/kv-cache.js';
import type { ModelConfig } from '../src/model/model-config.js';
import { computeClusterPlan, widestKvCache } from '../src/pipeline/cluster-plan.js';
import { SYNTHETIC_PRESETS } from '@edge-node/testkit';

// SmolLM2-135M's shape: 30 layers, 3 KV heads of 64.
const config: ModelConfig = SYNTHETIC_PRESETS['smollm2-135m'];

function member(name: string, kvCache: KvCacheType | undefined): ClusterMember {
  const profile: DeviceProfile = {
    gflopsDecode: 20, gflopsPrefill: 40, memBandwidthGBps: 20, memoryBytes: 8e9, memorySource: 'test', runtime: 'node',
    backend: 'kernels', isa: 'simd128', threads: 1, cores: 2, hostname: name, measuredAt: 1,
    ...(kvCache ? { kvCache } : {}),
  };
  return {
    peerId: `peer-${name}`, name, instanceId: name, addresses: [], profile, load: null,
    stageInfo: { model: 'fp', ready: true }, links: {}, version: 1, joinedAt: 0, lastSeen: 0,
  };
}

const request = { promptTokens: 64, genTokens: 64, contextTokens: 4096, concurrency: 2 };
/** Bytes the plan reserves on the first of two nodes holding 15 layers each. */
function firstStageBytes(self: KvCacheType, kinds: (KvCacheType | undefined)[]): number {
  const members = kinds.map((k, i) => member(`n${i}`, k));
  const plan = computeClusterPlan({ members, config, bytesPerWeight: 1.0625, kvCache: self, modelFingerprint: 'fp', split: [15, 15], request });
  return plan.plan.stages[0].memoryBytes;
}

describe('the KV cache type a cluster plan counts', () => {
  it('is the widest of this node\'s and the members\' (f32 > f16 > q8_0), members that do not say left out', () => {
    expect(widestKvCache('q8_0', [member('a', 'q8_0'), member('b', undefined)])).toBe('q8_0');
    expect(widestKvCache('q8_0', [member('a', 'f16'), member('b', 'q8_0')])).toBe('f16');
    expect(widestKvCache('f16', [member('a', 'f32')])).toBe('f32');
    expect(widestKvCache(undefined, [member('a', undefined)])).toBe('f32');
  });

  it('reserves Q8_0\'s 34 bytes per 32 values when every stage keeps Q8_0, F16\'s 2 when one of them keeps F16', () => {
    // 15 layers × 4096 positions × 2 requests × K and V × 192 values.
    const values = 15 * 4096 * 2 * 2 * 192;
    const q8 = firstStageBytes('q8_0', ['q8_0', 'q8_0']);
    expect(firstStageBytes('q8_0', ['q8_0', 'f16']) - q8).toBe(values * (2 - 34 / 32));
    expect(firstStageBytes('f16', ['f16', 'f16']) - q8).toBe(values * (2 - 34 / 32));
  });
});
