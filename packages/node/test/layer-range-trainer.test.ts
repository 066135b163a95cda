/**
 * The trainer's seam: a model's layers trained as two ranges (stories260K's 5 layers as 2 + 3, each a
 * LayerRangeTrainer that keeps only its inputs and recomputes in backward, keeps its activations, or keeps them for one
 * micro-batch at a time) give the bits of one 5-layer range that keeps its activations — the same losses, gradient
 * norms, gradients and adapter after steps.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComputeSlices } from '../src/engine/compute-slices.js';
import { loadModelEnds, loadShardWeights } from '../src/engine/shard-weights.js';
import { ADAMW_DEFAULTS } from '../src/training/adamw.js';
import { frozenEnds, frozenModel, frozenRange, trainShape, type FrozenEnds, type FrozenModel, type FrozenRange } from '../src/training/frozen-model.js';
import { KernelGemm } from '../src/training/kernel-gemm.js';
import { LayerRangeTrainer, MicroBatchError, type ActivationPolicy } from '../src/training/layer-range-trainer.js';
import { createLora, loraArrays, type LoraSet } from '../src/training/lora-set.js';
import { embedRows, headLossAndGrad } from '../src/training/model-ends-grad.js';
import { pipelinedStep } from '../src/training/pipelined-step.js';
import { quantisedFrozen } from '../src/training/quantised-frozen.js';
import { LocalTrainingStage } from '../src/training/training-stage.js';
import type { TrainSequence } from '../src/training/transformer-grad.js';
import { closeStories, openStories, STORIES_PROMPT, type StoriesEngine } from './support/stories-model.js';

let eng: StoriesEngine;
let whole: FrozenModel;
let ends: FrozenEnds;
let first: FrozenRange;
let second: FrozenRange;
beforeAll(async () => {
  eng = await openStories();
  const { model, runtime } = eng;
  const gemm = await KernelGemm.create(runtime);
  const freeze = (w: Parameters<typeof quantisedFrozen>[1]) => quantisedFrozen(runtime, w);
  whole = frozenModel(await loadShardWeights(model, { startLayer: 0, endLayer: 5 }, runtime), model.ropeLayout, gemm, freeze);
  ends = frozenEnds(await loadModelEnds(model, runtime), model.config, model.ropeLayout, gemm, freeze);
  first = frozenRange(await loadShardWeights(model, { startLayer: 0, endLayer: 2 }, runtime), model.ropeLayout, gemm, freeze);
  second = frozenRange(await loadShardWeights(model, { startLayer: 2, endLayer: 5 }, runtime), model.ropeLayout, gemm, freeze);
});
afterAll(async () => closeStories(eng ?? {}));

const BATCH: TrainSequence[] = [
  { tokens: Int32Array.from(STORIES_PROMPT), lossMask: STORIES_PROMPT.slice(1).map((_, i) => i >= 3) },
  { tokens: Int32Array.from([1, 403, 407, 261, 378, 430, 260]), lossMask: [true, true, true, true, true, true] },
  { tokens: Int32Array.from([1, 290, 344, 417, 275, 12, 403, 407]), lossMask: [false, true, true, true, true, true, true] },
];

function adapter(): LoraSet {
  return createLora(trainShape(eng.model.config, eng.model.ropeLayout), 5, 4, 8, 7);
}

const bits = (arrays: Float32Array[]) => arrays.map((a) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length)));
const ADAMW = { ...ADAMW_DEFAULTS, lr: 1e-2 };

describe('LayerRangeTrainer', () => {
  it('2 + 3 layers (recomputed in backward) give the gradients of one 5-layer range to the bit', () => {
    const lora = adapter();
    const one = new LayerRangeTrainer(whole, lora.layers, { activations: 'keep' });
    const a = new LayerRangeTrainer(first, lora.layers.slice(0, 2), { activations: 'recompute' });
    const b = new LayerRangeTrainer(second, lora.layers.slice(2), { activations: 'recompute' });
    const tokens = BATCH.reduce((n, s) => n + s.lossMask.filter(Boolean).length, 0);
    let sumOne = 0;
    let sumSplit = 0;
    BATCH.forEach((seq, k) => {
      const t = seq.tokens.length - 1;
      const x0 = embedRows(ends, seq.tokens, t);
      const yOne = one.forward(k, x0, t);
      const ySplit = b.forward(k, a.forward(k, x0, t), t);
      expect(bits([ySplit as Float32Array])).toEqual(bits([yOne as Float32Array]));
      const lOne = headLossAndGrad(whole, yOne, seq, 1 / tokens);
      const lSplit = headLossAndGrad(ends, ySplit, seq, 1 / tokens);
      sumOne += lOne.lossSum;
      sumSplit += lSplit.lossSum;
      const dOne = one.backward(k, lOne.dx);
      const dSplit = a.backward(k, b.backward(k, lSplit.dx));
      expect(bits([dSplit as Float32Array])).toEqual(bits([dOne as Float32Array]));
    });
    expect(sumSplit).toBe(sumOne);
    const gOne = loraArrays({ rank: 4, alpha: 8, layers: one.grads }) as Float32Array[];
    const gSplit = loraArrays({ rank: 4, alpha: 8, layers: [...a.grads, ...b.grads] }) as Float32Array[];
    expect(gOne.some((g) => g.some((v) => v !== 0))).toBe(true);
    expect(bits(gSplit)).toEqual(bits(gOne));
    // The gradients' square sum chained over the ranges is the whole range's.
    expect(b.gradSquareSum(a.gradSquareSum(0))).toBe(one.gradSquareSum(0));
  });

  it('steps through two stages, activations recomputed, kept, or kept up to 1 or 2 at once, give one stage\'s losses and adapter to the bit', async () => {
    const run = async (split: ActivationPolicy | null) => {
      const lora = adapter();
      const stages = split
        ? [
            new LocalTrainingStage('a', 0, 2, new LayerRangeTrainer(first, lora.layers.slice(0, 2), { activations: split, adamw: ADAMW })),
            new LocalTrainingStage('b', 2, 5, new LayerRangeTrainer(second, lora.layers.slice(2), { activations: split, adamw: ADAMW })),
          ]
        : [new LocalTrainingStage('one', 0, 5, new LayerRangeTrainer(whole, lora.layers, { activations: 'keep', adamw: ADAMW }))];
      const results = [];
      // A small clipping norm, so the clipping scale is used on some steps.
      for (let s = 0; s < 4; s++) results.push(await pipelinedStep(split ? ends : whole, stages, BATCH, 0.5));
      return { results, arrays: loraArrays(lora) as Float32Array[] };
    };
    const one = await run(null);
    expect(one.results[3].loss).toBeLessThan(one.results[0].loss);
    const policies: ActivationPolicy[] = ['recompute', 'keep', { keepUpTo: 1 }, { keepUpTo: 2 }];
    for (const policy of policies) {
      const two = await run(policy);
      expect(two.results).toEqual(one.results);
      expect(bits(two.arrays)).toEqual(bits(one.arrays));
    }
  });

  it('keepUpTo n holds at most n micro-batches\' activations, counting one being recomputed, with the bits of recompute', async () => {
    /** Runs a schedule of forwards (k ≥ 0) and backwards (−k − 1) and says, after each, how many kept their activations and how many layers each backward ran. */
    const run = async (n: number, schedule: number[]) => {
      const keeper = new LayerRangeTrainer(whole, adapter().layers, { activations: { keepUpTo: n } });
      const recompute = new LayerRangeTrainer(whole, adapter().layers, { activations: 'recompute' });
      let turns = 0;
      const slices = new ComputeSlices({ sliceMs: 0, turn: async () => void turns++ });
      const rows = (k: number) => BATCH[k % BATCH.length].tokens.length - 1;
      const x = (k: number) => embedRows(ends, BATCH[k % BATCH.length].tokens, rows(k));
      const outs = new Map<number, Float32Array>();
      const kept: number[] = [];
      const backTurns: number[] = [];
      for (const op of schedule) {
        if (op >= 0) {
          outs.set(op, (await keeper.forwardSliced(op, x(op), rows(op), slices)) as Float32Array);
          recompute.forward(op, x(op), rows(op));
        } else {
          const k = -op - 1;
          const before = turns;
          const d = await keeper.backwardSliced(k, outs.get(k)!, slices);
          backTurns.push(turns - before);
          expect(bits([d as Float32Array])).toEqual(bits([recompute.backward(k, outs.get(k)!) as Float32Array]));
        }
        kept.push(keeper.keptActivations);
      }
      expect(bits(loraArrays({ rank: 4, alpha: 8, layers: keeper.grads }) as Float32Array[])).toEqual(bits(loraArrays({ rank: 4, alpha: 8, layers: recompute.grads }) as Float32Array[]));
      return { kept, backTurns };
    };
    // A first stage's 1F1B with two in flight (F0 F1 B0 F2 B1 B2), then a last stage's (F3 B3).
    const oneF1B = [0, 1, -1, 2, -2, -3, 3, -4];
    // 5 layers back; 5 more when the forward is run again first.
    expect(await run(1, oneF1B)).toEqual({ kept: [1, 1, 0, 0, 0, 0, 1, 0], backTurns: [5, 10, 10, 5] });
    // Two at once: nothing recomputed with two in flight.
    expect(await run(2, oneF1B)).toEqual({ kept: [1, 2, 1, 2, 1, 0, 1, 0], backTurns: [5, 5, 5, 5] });
    // Three in flight with room for two: the third is recomputed; the fourth keeps its activations, as 1's come back
    // before 2's recompute (then 3's and 2's are held: two).
    expect(await run(2, [0, 1, 2, -1, 3, -2, -3, -4])).toEqual({ kept: [1, 2, 2, 1, 2, 1, 1, 0], backTurns: [5, 5, 10, 5] });
    // Room for three: 6 is not kept though only two are (4 and 5), as both are younger than 3, which will be
    // recomputed while they are held: with 6 that would be four.
    expect(await run(3, [0, 1, 2, 3, -1, 4, -2, 5, -3, 6, -4, -5, -6, -7])).toEqual({ kept: [1, 2, 3, 3, 2, 3, 2, 3, 2, 2, 2, 1, 0, 0], backTurns: [5, 5, 5, 10, 5, 5, 10] });
  });

  it('resumed from its state after 2 steps, a range ends 4 steps with the adapter of 4 steps in a row', async () => {
    const trainer = (resume?: ReturnType<LayerRangeTrainer['state']>) => {
      const lora = adapter();
      return new LayerRangeTrainer(second, lora.layers.slice(2), { activations: 'recompute', adamw: ADAMW, ...(resume ? { resume } : {}) });
    };
    // The first range starts afresh at every step (so it feeds the second the same way in every run).
    const firstRange = () => new LayerRangeTrainer(first, adapter().layers.slice(0, 2), { activations: 'recompute', adamw: ADAMW });
    const run = async (t: LayerRangeTrainer, steps: number) => {
      const losses = [];
      for (let s = 0; s < steps; s++) {
        const stages = [new LocalTrainingStage('a', 0, 2, firstRange()), new LocalTrainingStage('b', 2, 5, t)];
        losses.push((await pipelinedStep(ends, stages, BATCH, 0.5)).loss);
      }
      return losses;
    };
    const straight = trainer();
    const all = await run(straight, 4);
    const before = trainer();
    const head = await run(before, 2);
    const resumed = trainer(before.state());
    const tail = await run(resumed, 2);
    expect([...head, ...tail]).toEqual(all);
    expect(bits(resumed.state().params as Float32Array[])).toEqual(bits(straight.state().params as Float32Array[]));
    expect(resumed.state().t).toBe(4);
  });

  it('lets the event loop turn between layers (sliced), with the same bits', async () => {
    const lora = adapter();
    const plain = new LayerRangeTrainer(whole, lora.layers, { activations: 'recompute' });
    const sliced = new LayerRangeTrainer(whole, adapter().layers, { activations: 'recompute' });
    let turns = 0;
    // A slice of 0 ms: a turn at every checkpoint, i.e. after every layer.
    const slices = new ComputeSlices({ sliceMs: 0, turn: async () => void turns++ });
    const x = embedRows(ends, BATCH[0].tokens, 11);
    const y = await sliced.forwardSliced(0, x, 11, slices);
    expect(turns).toBe(5);
    expect(bits([y as Float32Array])).toEqual(bits([plain.forward(0, x, 11) as Float32Array]));
    const d = await sliced.backwardSliced(0, y, slices);
    // The recomputed forward's 5 layers, then the 5 backwards.
    expect(turns).toBe(15);
    expect(bits([d as Float32Array])).toEqual(bits([plain.backward(0, y) as Float32Array]));
  });

  it('refuses a backward out of the forwards\' order', () => {
    const lora = adapter();
    const a = new LayerRangeTrainer(first, lora.layers.slice(0, 2), { activations: 'recompute' });
    const x = embedRows(ends, BATCH[1].tokens, 6);
    a.forward(0, x, 6);
    a.forward(1, x, 6);
    expect(() => a.backward(1, x)).toThrow(MicroBatchError);
    expect(() => a.backward(0, new Float32Array(3))).toThrow(/gradient of 3 values/);
  });
});
