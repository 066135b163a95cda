/**
 * One plan whoever coordinates: a --split given to one node is announced with its stage, and every coordinator
 * lays out the same stages from it and names the same owner; a coordinator's own --split stays its own.
 */
import { describe, expect, it } from 'vitest';
import type { ClusterMember } from '../src/cluster/membership.js';
import type { ModelConfig } from '../src/model/model-config.js';
import { computeClusterPlan } from '../src/pipeline/cluster-plan.js';
import { SYNTHETIC_PRESETS } from '@edge-node/testkit';

const config: ModelConfig = SYNTHETIC_PRESETS['smollm2-135m'];
const request = { promptTokens: 64, genTokens: 64, contextTokens: 1024, concurrency: 1 };

function member(name: string, split?: number[]): ClusterMember {
  return {
    peerId: `peer-${name}`, name, instanceId: name, addresses: [], load: null, links: {}, version: 1, joinedAt: 0, lastSeen: 0,
    profile: { gflopsDecode: 20, gflopsPrefill: 40, memBandwidthGBps: 20, memoryBytes: 8e9, memorySource: 'test', runtime: 'node', backend: 'kernels', isa: 'simd128', threads: 1, cores: 2, hostname: name, measuredAt: 1 },
    stageInfo: { model: 'fp', ready: true, ...(split ? { split } : {}) },
  };
}

const layout = (self: string, members: ClusterMember[]) => {
  const p = computeClusterPlan({ members, config, modelFingerprint: 'fp', request, self: `peer-${self}` });
  return { stages: p.stages.map((s) => `${s.name}[${s.startLayer},${s.endLayer})`), owner: p.owner?.name, why: p.owner?.why };
};

describe('the plan owner', () => {
  it('is the node given --split: every coordinator lays out its split and names it', () => {
    const members = [member('c'), member('a'), member('b', [10, 10, 10])];
    for (const self of ['a', 'b', 'c']) {
      expect(layout(self, members)).toEqual({ stages: ['a[0,10)', 'b[10,20)', 'c[20,30)'], owner: 'b', why: 'b was given --split 10,10,10' });
    }
  });

  it('is the first by name among several given --split, except for a coordinator with its own', () => {
    const members = [member('a', [20, 10]), member('b', [5, 25])];
    expect(layout('c', [...members, member('c')]).stages).toEqual(['a[0,20)', 'b[20,30)']);
    expect(layout('b', members)).toMatchObject({ stages: ['a[0,5)', 'b[5,30)'], owner: 'b' });
  });

  it('is the coordinator planning with the partitioner when nobody was given --split', () => {
    expect(layout('b', [member('a'), member('b')]).why).toBe('no node was given --split: b planned it with the partitioner');
  });
});
