import { describe, expect, it } from 'vitest';
import type { Cluster, Device } from '../src/cluster.js';
import type { ModelShape } from '../src/model-shape.js';
import { LAYER_FIXED_FLOPS, TrainingCostModel } from '../src/training-cost-model.js';
import { evaluateTrainingSplit } from '../src/training-planner.js';

// stories260K: 5 layers 64 wide, a 512-token vocabulary, F32.
const tiny: ModelShape = { hiddenSize: 64, intermediateSize: 172, numLayers: 5, numHeads: 8, numKvHeads: 4, headDim: 8, vocabSize: 512, tiedEmbeddings: true, attentionBias: false, bytesPerWeight: 4 };
// The moo job: 16-row sequences, 4 a step, rank 8.
const job = { sequenceTokens: 16, microBatches: 4, rank: 8 };
// This machine's node profile (one thread): rates, fixed costs of a frame, a token and a pass.
const node = (id: string, memoryBytes = 8e9): Device => ({ id, gflops: 17.3, gflopsPrefill: 48.5, memBandwidthGBps: 9.35, memoryBytes, stepOverheadMs: 0.16, tokenOverheadMs: 0.14, passOverheadMs: 0.006 });
const over = (latencyMs: number, ...devices: Device[]): Cluster => ({ devices, links: [], defaultLink: { latencyMs, bandwidthMBps: 100 } });

describe('training step fixed costs', () => {
  it("prices a tiny model's step mostly by its fixed costs, not its FLOPs", () => {
    const cluster = over(1, node('a'));
    const plan = evaluateTrainingSplit(tiny, cluster, job, 'a', [5]);
    const tm = new TrainingCostModel(tiny, cluster, job, 0, 1);
    // The layers' fixed work alone, 4 micro-batches × 5 layers at the one-row rate, is most of the step.
    const fixedWork = (4 * 5 * LAYER_FIXED_FLOPS) / 17.3e6;
    expect(fixedWork / plan.stepMs).toBeGreaterThan(0.6);
    // Priced as FLOPs alone (what the model did before), the step was ~6 ms where the runtime takes 17–26 ms.
    expect(plan.stepMs).toBeGreaterThan(12);
    expect(plan.stepMs).toBeLessThan(30);
    // One stage: the micro-batches run one at a time, each the whole ring; then the norm and AdamW.
    expect(plan.stepMs).toBeCloseTo(4 * plan.ringMs + plan.stepFixedMs, 9);
    expect(plan.ringMs).toBeCloseTo(tm.layersMs(0, 0, 5) + tm.endsMs(0), 9);
  });

  it('counts the owner relays per micro-batch per stage on another node: two round trips each, none on the owner', () => {
    const L = 1.5;
    const cluster = over(L, node('a'), node('b'), node('c'));
    const plan = evaluateTrainingSplit(tiny, cluster, job, 'a', [1, 2, 2]);
    const tm = new TrainingCostModel(tiny, cluster, job, 0, 3);
    // Each of b's and c's micro-batches: its forward and its backward, each there and back (latency both ways), the
    // owner's turn for each reply, and T hidden states (or gradients) each way.
    const transfer = (16 * 64 * 4) / (100 * 1e3);
    const relay = 2 * (2 * L + 0.14 + 2 * transfer);
    expect(plan.stages.map((s) => s.hopMs)).toEqual([0, relay, relay].map((x) => expect.closeTo(x, 9)));
    expect(plan.ringMs).toBeCloseTo(plan.stages.reduce((s, x) => s + x.computeMs, 0) + 2 * relay, 9);
    // A stage on another node decodes a frame and encodes one per op (its stepOverheadMs); the owner's own is called directly.
    expect(tm.layersMs(1, 1, 3) - tm.layersMs(0, 1, 3)).toBeCloseTo(2 * 0.16, 9);
    // The relays' latency is in flight, not busy: with 3 micro-batches in flight for 4 micro-batches the step goes
    // at the ring over them, not at the slowest stage, and a slower link slows every micro-batch.
    expect(plan.ringMs / 3).toBeGreaterThan(plan.bottleneckMs);
    const slower = evaluateTrainingSplit(tiny, over(2 * L, node('a'), node('b'), node('c')), job, 'a', [1, 2, 2]);
    expect(slower.stepMs - plan.stepMs).toBeGreaterThan(((4 + 4 / 3) * 2 * 2 * 2 * L) / 2);
  });

  it('prices the gradients\' norm round stage by stage and AdamW once, at the slowest stage', () => {
    const L = 1;
    const one = evaluateTrainingSplit(tiny, over(L, node('a')), job, 'a', [5]);
    const three = evaluateTrainingSplit(tiny, over(L, node('a'), node('b'), node('c')), job, 'a', [1, 2, 2]);
    // Two stages on other nodes: two norm round trips in turn (each 2 L, the owner's turn, the stage's frame), and
    // AdamW's round trip once (they step at once).
    const trip = 2 * L + 0.14 + 0.16;
    expect(three.stepFixedMs - one.stepFixedMs).toBeGreaterThan(3 * trip - 0.5);
    expect(three.stepFixedMs - one.stepFixedMs).toBeLessThan(3 * trip);
  });

  it('keeps one micro-batch per stage in flight: a plan of 2 stages on 3 devices is priced with 2, not 3', () => {
    const roomy = new TrainingCostModel(tiny, over(1, node('a'), node('b'), node('c')), job, 0, 2);
    const two = roomy.memory(2, 5, 2).total;
    // b holds 2 micro-batches' activations of [2, 5) but not 3.
    const cluster = over(1, node('a'), node('b', two), node('c'));
    const searching = new TrainingCostModel(tiny, cluster, job, 0);
    expect(searching.recomputes(1, 2, 5)).toBe(true);
    const plan = evaluateTrainingSplit(tiny, cluster, job, 'a', [2, 3, 0]);
    const priced = new TrainingCostModel(tiny, cluster, job, 0, 2);
    expect(priced.recomputes(1, 2, 5)).toBe(false);
    expect(plan.stages[1].computeMs).toBeCloseTo(priced.layersMs(1, 2, 5), 9);
    expect(plan.stages[1].computeMs).toBeLessThan(searching.layersMs(1, 2, 5));
  });

  it('prices compute and transfers at the mean rows and memory at the longest sequence', () => {
    const cluster = over(1, node('a'), node('b'));
    const longest = new TrainingCostModel(tiny, cluster, job, 0, 2);
    const mixed = new TrainingCostModel(tiny, cluster, { ...job, meanTokens: 12 }, 0, 2);
    const twelve = new TrainingCostModel(tiny, cluster, { ...job, sequenceTokens: 12 }, 0, 2);
    expect(mixed.layersMs(1, 2, 5)).toBeCloseTo(twelve.layersMs(1, 2, 5), 9);
    expect(mixed.relayMs(1)).toBeCloseTo(twelve.relayMs(1), 9);
    expect(mixed.layersMs(1, 2, 5)).toBeLessThan(longest.layersMs(1, 2, 5));
    expect(mixed.memory(2, 5).total).toBe(longest.memory(2, 5).total);
    expect(mixed.memory(2, 5).total).toBeGreaterThan(twelve.memory(2, 5).total);
  });
});
