import { describe, expect, it } from 'vitest';
import { planPipeline } from '../src/planner.js';
import { replan, movedLayers } from '../src/replan.js';
import { CostModel } from '../src/cost-model.js';
import { modelProfile } from '../src/model-profile.js';
import type { Cluster, Device } from '../src/cluster.js';

const profile = modelProfile({ hiddenSize: 64, intermediateSize: 256, numLayers: 12, numHeads: 4, numKvHeads: 2, headDim: 16, vocabSize: 1000, tiedEmbeddings: false, attentionBias: false, bytesPerWeight: 4 });
const request = { promptTokens: 8, genTokens: 8 };
const probe = new CostModel(profile, { devices: [{ id: 'p', gflops: 1, memBandwidthGBps: 1, memoryBytes: 1 }], links: [] }, request);
// Each device holds at most 6 of the 12 layers (with the embedding or the head): two devices are needed.
const mem = Math.max(probe.memoryBytes(0, 6), probe.memoryBytes(6, 12)) * 1.001;
const dev = (id: string): Device => ({ id, gflops: 10, memBandwidthGBps: 10, memoryBytes: mem });
const cluster = (ids: string[]): Cluster => ({ devices: ids.map(dev), links: [], defaultLink: { latencyMs: 2, bandwidthMBps: 50 } });

describe('replan', () => {
  it('moves nothing when an identical device joins and the current plan is still optimal', () => {
    const before = planPipeline(profile, cluster(['a', 'b', 'c']), request);
    expect(before.stages).toHaveLength(2);
    // Listing the newcomer first would make a fresh plan pick it; the re-plan keeps the old layout.
    const { plan, movedLayers: moved } = replan(before, profile, cluster(['z', 'c', 'b', 'a']), request);
    expect(moved).toBe(0);
    expect(plan.cost.objectiveValue).toBeCloseTo(before.cost.objectiveValue, 9);
    const fresh = planPipeline(profile, cluster(['z', 'c', 'b', 'a']), request);
    expect(fresh.cost.objectiveValue).toBeCloseTo(plan.cost.objectiveValue, 9);
  });

  it('after a leave, moves only the departed device\'s layers', () => {
    for (const objective of ['latency', 'throughput'] as const) {
      const before = planPipeline(profile, cluster(['a', 'b', 'c']), request, { objective });
      const gone = before.stages[0].device;
      const kept = before.stages[1];
      const left = ['a', 'b', 'c'].filter((x) => x !== gone);
      const { plan, movedLayers: moved } = replan(before, profile, cluster(left.reverse()), request);
      const lost = before.stages[0].endLayer - before.stages[0].startLayer;
      expect(moved).toBe(lost);
      expect(plan.stages.find((s) => s.device === kept.device)).toMatchObject({ startLayer: kept.startLayer, endLayer: kept.endLayer });
    }
  });

  it('movedLayers counts layers whose device changed', () => {
    const a = planPipeline(profile, cluster(['a', 'b']), request, { strategy: 'equal' });
    const b = planPipeline(profile, cluster(['b', 'a']), request, { strategy: 'equal' });
    expect(movedLayers(a, a)).toBe(0);
    expect(movedLayers(a, b)).toBe(12);
  });
});
