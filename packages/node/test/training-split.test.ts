/**
 * A fine-tuning job's split without --split: the partitioner's training plan over the members serving the model,
 * from the owner, priced for the job; with a split given by hand, none (the job keeps the serving route).
 */
import { describe, expect, it } from 'vitest';
import { TrainingDoesNotFitError } from '@edge-node/partitioner';
import type { DeviceLoad } from '../src/cluster/device-load.js';
import type { ClusterMember } from '../src/cluster/membership.js';
import type { ModelConfig } from '../src/model/model-config.js';
import { trainingRouteStepMs, trainingSplit, type TrainingSplitInput } from '../src/pipeline/training-split.js';
import { SYNTHETIC_PRESETS } from '@edge-node/testkit';

// SmolLM2-135M's shape: 30 layers, a tied 49 152 × 576 head.
const config: ModelConfig = SYNTHETIC_PRESETS['smollm2-135m'];

function member(name: string, o: { slowdown?: number; availableMemoryBytes?: number; split?: number[]; model?: string } = {}): ClusterMember {
  const load: DeviceLoad | null =
    o.slowdown === undefined && o.availableMemoryBytes === undefined
      ? null
      : { slowdown: o.slowdown ?? 1, calibration: null, promptCalibration: null, source: 'probe', since: 0, otherCpuCores: 0, availableMemoryBytes: o.availableMemoryBytes ?? 8e9, memoryBudgetBytes: 8e9, memoryReason: '' };
  return {
    peerId: `peer-${name}`, name, instanceId: name, addresses: [], load, links: {}, version: 1, joinedAt: 0, lastSeen: 0,
    profile: { gflopsDecode: 20, gflopsPrefill: 40, memBandwidthGBps: 20, memoryBytes: 8e9, memorySource: 'test', runtime: 'node', backend: 'kernels', isa: 'simd128', threads: 1, cores: 2, hostname: name, measuredAt: 1 },
    stageInfo: { model: o.model ?? 'fp', ready: true, ...(o.split ? { split: o.split } : {}) },
  };
}

const input = (members: ClusterMember[], extra: Partial<TrainingSplitInput> = {}): TrainingSplitInput => ({
  members, config, bytesPerWeight: 1.0625, fingerprint: 'fp', self: 'peer-a', job: { sequenceTokens: 64, microBatches: 4, rank: 8 }, serving: null, ...extra,
});
const layers = (c: { stages: { peerId: string; startLayer: number; endLayer: number }[] }, peer: string) => c.stages.filter((s) => s.peerId === peer).reduce((n, s) => n + s.endLayer - s.startLayer, 0);

describe('trainingSplit', () => {
  it('plans from the owner over the members with the model, and says why with the predicted step', () => {
    const serving = { planId: 'x', peers: ['peer-b', 'peer-a'], ranges: [[0, 15], [15, 30]] as [number, number][], model: 'fp' };
    const c = trainingSplit(input([member('b'), member('a'), member('c', { model: 'other' })], { serving }))!;
    expect(c.stages[0].peerId).toBe('peer-a');
    expect(c.stages.every((s) => s.peerId !== 'peer-c')).toBe(true);
    // The owner pays the head and the loss: it takes fewer layers than the other, equal node.
    expect(layers(c, 'peer-a')).toBeLessThan(layers(c, 'peer-b'));
    expect(c.why).toMatch(/^training plan a\[0,\d+\) → b\[\d+,30\) \(partitioner, exact, over 2 nodes\): predicted \d+ ms per step of 4 sequences; the serving split b\[0,15\) → a\[15,30\) would take \d+ ms$/);
    const serveMs = Number(/would take (\d+) ms/.exec(c.why)![1]);
    expect(c.stepMs).toBeLessThanOrEqual(serveMs + 1);
  });

  it('gives a loaded node fewer layers, and one short of memory fewer still', () => {
    const free = trainingSplit(input([member('a'), member('b')]))!;
    const slow = trainingSplit(input([member('a'), member('b', { slowdown: 3 })]))!;
    expect(layers(slow, 'peer-b')).toBeLessThan(layers(free, 'peer-b'));
    const short = trainingSplit(input([member('a'), member('b', { availableMemoryBytes: 60e6 })]))!;
    expect(layers(short, 'peer-b')).toBeLessThan(layers(free, 'peer-b'));
  });

  it('refuses, naming what is missing, when the nodes have not the memory the job needs now', () => {
    expect(() => trainingSplit(input([member('a', { availableMemoryBytes: 50e6 }), member('b', { availableMemoryBytes: 50e6 })]))).toThrow(TrainingDoesNotFitError);
    expect(() => trainingSplit(input([member('a', { availableMemoryBytes: 50e6 }), member('b', { availableMemoryBytes: 50e6 })]))).toThrow(/owner a .* short/);
  });

  it('keeps a split given by hand (null: the serving route), unless its nodes are gone', () => {
    expect(trainingSplit(input([member('a', { split: [10, 20] }), member('b')]))).toBeNull();
    expect(trainingSplit(input([member('a'), member('b', { split: [10, 20] })]))).toBeNull();
    expect(trainingSplit(input([member('a', { split: [10, 20] })]))!.stages).toEqual([{ peerId: 'peer-a', name: 'a', startLayer: 0, endLayer: 30 }]);
  });

  it("prices with the profiles' rates slowed by load, not with serving's calibrations (the fixed work is priced apart)", () => {
    const plain = trainingSplit(input([member('a', { slowdown: 1 }), member('b', { slowdown: 1 })]))!;
    const calibrated = [member('a', { slowdown: 1 }), member('b', { slowdown: 1 })].map((m) => ({ ...m, load: { ...m.load!, calibration: 12, promptCalibration: 30 } }));
    expect(trainingSplit(input(calibrated))!.stepMs).toBe(plain.stepMs);
    const loaded = trainingSplit(input([member('a', { slowdown: 2 }), member('b', { slowdown: 2 })]))!;
    expect(loaded.stepMs).toBeGreaterThan(1.9 * plain.stepMs);
  });

  it('prices a split given by hand, so that its job can say what it was predicted to take', () => {
    const members = [member('a', { split: [10, 20] }), member('b')];
    const route = (ranges: [number, number][], peers = ['peer-a', 'peer-b']) => ({ planId: 'x', peers, ranges, model: 'fp' });
    const even = trainingRouteStepMs(input(members), route([[0, 15], [15, 30]]))!;
    const given = trainingRouteStepMs(input(members), route([[0, 10], [10, 30]]))!;
    expect(even).toBeGreaterThan(0);
    // The owner pays the head: with fewer layers on it the step is shorter (two equal nodes).
    expect(given).toBeLessThan(even);
    // A node of the route that is not a member serving the model: not priced.
    expect(trainingRouteStepMs(input(members), route([[0, 15], [15, 30]], ['peer-a', 'peer-z']))).toBeNull();
  });
});
