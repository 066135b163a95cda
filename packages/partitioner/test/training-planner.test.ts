import { describe, expect, it } from 'vitest';
import type { Cluster, Device } from '../src/cluster.js';
import { CostModel } from '../src/cost-model.js';
import { TrainingDoesNotFitError } from '../src/errors.js';
import { modelProfile } from '../src/model-profile.js';
import type { ModelShape } from '../src/model-shape.js';
import { planPipeline } from '../src/planner.js';
import { LAYER_FIXED_FLOPS, RECOMPUTE_FORWARDS_PER_TOKEN, TRAINING_FORWARDS_PER_TOKEN, TrainingCostModel } from '../src/training-cost-model.js';
import { evaluateTrainingSplit, planTraining, type TrainingPlan } from '../src/training-planner.js';

// A 12-layer Q8_0 model whose untied head (32 000 × 512) weighs about as much as 2.5 of its layers.
const shape: ModelShape = { hiddenSize: 512, intermediateSize: 1408, numLayers: 12, numHeads: 8, numKvHeads: 8, headDim: 64, vocabSize: 32000, tiedEmbeddings: false, attentionBias: false, bytesPerWeight: 1.0625 };
const job = { sequenceTokens: 128, microBatches: 4, rank: 8 };
const dev = (id: string, slowdown = 1, memoryBytes = 8e9): Device => ({ id, gflops: 20 / slowdown, gflopsPrefill: 60 / slowdown, memBandwidthGBps: 50 / slowdown, memoryBytes });
const clusterOf = (...devices: Device[]): Cluster => ({ devices, links: [], defaultLink: { latencyMs: 1, bandwidthMBps: 1000 } });
const layersOf = (p: TrainingPlan, id: string) => p.stages.filter((s) => s.device === id).reduce((n, s) => n + s.endLayer - s.startLayer, 0);
const period = (p: TrainingPlan) => Math.max(p.bottleneckMs, p.ringMs / p.job.microBatches);

describe('training cost', () => {
  it('prices a training token at 3 prefill tokens of the same layers when the stage keeps its activations (plus the small LoRA products)', () => {
    const cluster = clusterOf({ ...dev('a'), memBandwidthGBps: 1e6 });
    const tm = new TrainingCostModel(shape, cluster, job, 0);
    const serving = new CostModel(modelProfile(shape), cluster, { promptTokens: job.sequenceTokens, genTokens: 1 });
    const ratio = tm.layersMs(0, 3, 7) / serving.prefillMs(0, 3, 7);
    expect(TRAINING_FORWARDS_PER_TOKEN).toBe(3);
    expect(tm.recomputes(0, 3, 7)).toBe(false);
    expect(ratio).toBeGreaterThanOrEqual(3);
    expect(ratio).toBeLessThan(3.15);
  });

  it('adds the recomputed forwards of the micro-batches a stage cannot keep, as the runtime decides', () => {
    const fast = (id: string, memoryBytes = 8e9): Device => ({ ...dev(id, 1, memoryBytes), memBandwidthGBps: 1e6 });
    const roomy = new TrainingCostModel(shape, clusterOf(fast('a'), fast('b')), job, 0);
    // Two devices: two micro-batches in flight per stage. b with room for one micro-batch's activations only.
    const oneKept = roomy.memoryBytes(6, 12);
    const twoKept = roomy.memory(6, 12, 2).total;
    expect(twoKept).toBeGreaterThan(oneKept);
    const tight = new TrainingCostModel(shape, clusterOf(fast('a'), fast('b', oneKept)), job, 0);
    expect(roomy.keptOn(1, 6, 12)).toBe(2);
    expect(tight.keptOn(1, 6, 12)).toBe(1);
    expect(tight.recomputes(1, 6, 12)).toBe(true);
    expect(tight.fits(1, 6, 12)).toBe(true);
    // It keeps one of its two in flight: the other's forward again, half a forward per micro-batch (the layers' fixed
    // work, at the one-row rate of 20 GFLOP/s, is not recomputed).
    expect(tight.recomputedShare(1, 6, 12)).toBe(0.5);
    const fixed = (6 * LAYER_FIXED_FLOPS) / 20e6;
    const ratio = (tight.layersMs(1, 6, 12) - fixed) / (roomy.layersMs(1, 6, 12) - fixed);
    expect(ratio).toBeCloseTo((TRAINING_FORWARDS_PER_TOKEN + 0.5 * RECOMPUTE_FORWARDS_PER_TOKEN) / TRAINING_FORWARDS_PER_TOKEN, 6);
  });

  it('charges the head and loss to the owner, wherever the layers are', () => {
    const tm = new TrainingCostModel(shape, clusterOf(dev('a'), dev('b')), job, 0);
    expect(tm.computeMs(0, 0, 3)).toBeGreaterThan(tm.layersMs(0, 0, 3) + 0.9 * tm.layersMs(0, 0, 2));
    expect(tm.computeMs(1, 9, 12)).toBe(tm.layersMs(1, 9, 12));
    // Only the owner may hold the first stage.
    expect(tm.fits(1, 0, 1)).toBe(false);
    expect(tm.fits(0, 0, 1)).toBe(true);
  });
});

describe('planTraining', () => {
  it('moves layers off the owner for its head, where the serving plan loads the first stage (its head is on the last)', () => {
    const cluster = clusterOf(dev('a'), dev('b'));
    const train = planTraining(shape, cluster, job, 'a');
    expect(train.stages[0].device).toBe('a');
    expect(layersOf(train, 'a')).toBeLessThan(layersOf(train, 'b'));
    const serve = planPipeline(modelProfile(shape), cluster, { promptTokens: 128, genTokens: 64, concurrency: 4 }, { objective: 'throughput' });
    const [first, last] = serve.stages;
    expect(first.endLayer - first.startLayer).toBeGreaterThanOrEqual(last.endLayer - last.startLayer);
    // Priced like inference (no head on the owner), the two equal devices would split 6/6 for a balanced step: the
    // training plan's is faster than that split's.
    const even = evaluateTrainingSplit(shape, cluster, job, 'a', [6, 6]);
    expect(period(train)).toBeLessThan(period(even));
  });

  it('gives a device 3× slower about a third of the work, balancing the stages it prices', () => {
    const train = planTraining(shape, clusterOf(dev('a'), dev('b', 3)), job, 'a');
    // 4 of 12 layers: a third of the layers, a's share of the work lower still for the head it also runs (the layers
    // priced without the recomputed forward, both devices keeping their activations, the head weighs more beside them).
    expect(layersOf(train, 'b')).toBe(4);
    const [a, b] = train.stages;
    expect(Math.abs(a.computeMs - b.computeMs) / Math.max(a.computeMs, b.computeMs)).toBeLessThan(0.35);
    expect(train.stepMs).toBeCloseTo(train.ringMs + 3 * Math.max(train.bottleneckMs, train.ringMs / 2) + train.stepFixedMs, 6);
  });

  it('gives fewer layers to a device that holds its serving range but not that range for training', () => {
    const free = planTraining(shape, clusterOf(dev('a'), dev('b')), job, 'a');
    const bRange = free.stages.find((s) => s.device === 'b')!;
    const servingBytes = new CostModel(modelProfile(shape), clusterOf(dev('a'), dev('b')), { promptTokens: 128, genTokens: 64, concurrency: 4 }).memoryBytes(bRange.startLayer, bRange.endLayer);
    const tight = planTraining(shape, clusterOf(dev('a'), dev('b', 1, servingBytes)), job, 'a');
    expect(layersOf(tight, 'b')).toBeLessThan(bRange.endLayer - bRange.startLayer);
    expect(tight.fitsInMemory).toBe(true);
    for (const s of tight.stages) expect(s.memoryBytes).toBeLessThanOrEqual(s.memoryAvailableBytes);
  });

  it('refuses a job the owner cannot start, naming it and by how much', () => {
    const tm = new TrainingCostModel(shape, clusterOf(dev('a'), dev('b')), job, 0);
    const need = tm.memoryBytes(0, 1);
    const err = (() => {
      try {
        planTraining(shape, clusterOf(dev('a', 1, need - 5e6), dev('b')), job, 'a');
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(TrainingDoesNotFitError);
    const e = err as TrainingDoesNotFitError;
    expect(e.device).toBe('a');
    expect(e.missingBytes).toBeCloseTo(5e6, -1);
    expect(e.message).toMatch(/owner a .* \(5\.0 MB short\)/);
  });

  it('refuses a job whose layers the devices cannot hold, with each device\'s share and the missing bytes', () => {
    const tm = new TrainingCostModel(shape, clusterOf(dev('a'), dev('b')), job, 0);
    expect(() => planTraining(shape, clusterOf(dev('a', 1, tm.memoryBytes(0, 4)), dev('b', 1, tm.memoryBytes(4, 9))), job, 'a')).toThrow(
      /can hold about 9 of 12 layers for training \(a 4, b 5\).*missing about/,
    );
  });

  it('the fast planner (many devices) starts at the owner and is never better than the exact one', () => {
    const devices = [dev('o', 2, 2e9), dev('p', 1, 1e8), dev('q', 1.5, 6e7), dev('r', 4), dev('s', 1, 5e7), dev('t', 3, 9e7)];
    const cluster = clusterOf(...devices);
    const exact = planTraining(shape, cluster, job, 'o', { strategy: 'exact' });
    const fast = planTraining(shape, cluster, job, 'o', { strategy: 'fast' });
    for (const p of [exact, fast]) {
      expect(p.stages[0].device).toBe('o');
      expect(p.fitsInMemory).toBe(true);
    }
    expect(period(fast)).toBeGreaterThanOrEqual(period(exact) * (1 - 1e-9));
    const many = clusterOf(dev('o', 2), ...Array.from({ length: 15 }, (_, i) => dev(`d${i}`, 1 + (i % 4), 4e7 + i * 1e7)));
    const big = planTraining(shape, many, job, 'o');
    expect(big.strategy).toBe('fast');
    expect(big.stages[0].device).toBe('o');
    expect(big.stages.reduce((n, s) => n + s.endLayer - s.startLayer, 0)).toBe(12);
  });
});
