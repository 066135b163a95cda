/**
 * Training speed beside the engine's prefill on the same model, in the same process, one thread, alternating runs
 * (issue 26's goal: training tokens/s ≥ 1/3 of prefill tokens/s).
 *
 *   npx tsx scripts/bench-training.ts [--model PATH] [--tokens T] [--batch B] [--rank R] [--runs N]
 *                                     [--stages S | --layers A:B [--window W]] [--activations recompute|keep|N]
 *
 * Prefill: one QuantShard.forward of T token ids (a fresh cache each run). Training: one step as `edge-node finetune`
 * runs it (the forward on the engine's blocks, its loss, the backward, clipping, AdamW) on B sequences of T tokens;
 * its tokens are the B·T positions it computes. With --stages S the step runs as a cluster's does instead
 * (pipelined-step.ts, 1F1B with S micro-batches in flight): the owner's ends and S stages of consecutive layers, each
 * built as stage-training-job.ts builds it (its own weights; --activations: recompute, keep, or N: keep up to N at
 * once, default 1), all on this thread; the ratio is then the stages' and owner's summed work against the whole
 * model's prefill. With
 * --layers A:B, one middle stage alone (no embeddings, no head): the engine's prefill of T hidden states through
 * layers [A, B) against that range's training (B micro-batches forward and back in a middle stage's 1F1B order with W
 * in flight, then its step): the issue's "training tokens/s per stage". Random token
 * ids, seeded. Figures are medians of N runs after a warm-up, in wall-clock time and per second of process CPU time.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createKernelRuntime, type WeightMatrix } from '@edge-node/kernels';
import type { ShardInput } from '../packages/node/src/engine/forward-shard.js';
import { QuantShard } from '../packages/node/src/engine/quant-shard.js';
import { loadModelEnds, loadShardWeights } from '../packages/node/src/engine/shard-weights.js';
import { openModel } from '../packages/node/src/model/open-model.js';
import { AdamW, ADAMW_DEFAULTS } from '../packages/node/src/training/adamw.js';
import { frozenEnds, frozenModel, frozenRange, trainShape } from '../packages/node/src/training/frozen-model.js';
import { KernelGemm } from '../packages/node/src/training/kernel-gemm.js';
import { quantisedFrozen } from '../packages/node/src/training/quantised-frozen.js';
import { createLora } from '../packages/node/src/training/lora-set.js';
import { LayerRangeTrainer, type ActivationPolicy } from '../packages/node/src/training/layer-range-trainer.js';
import { pipelinedStep } from '../packages/node/src/training/pipelined-step.js';
import { trainStep } from '../packages/node/src/training/train-step.js';
import { LocalTrainingStage, type TrainingStage } from '../packages/node/src/training/training-stage.js';
import type { TrainSequence } from '../packages/node/src/training/transformer-grad.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'packages/node/models/stories260K.gguf' },
    tokens: { type: 'string', default: '64' },
    batch: { type: 'string', default: '4' },
    rank: { type: 'string', default: '8' },
    runs: { type: 'string', default: '5' },
    stages: { type: 'string' },
    activations: { type: 'string', default: '1' },
    layers: { type: 'string' },
    window: { type: 'string', default: '2' },
  },
});
const T = Number(values.tokens);
const B = Number(values.batch);
const runs = Number(values.runs);

const model = await openModel(values.model);
const runtime = await createKernelRuntime({ threads: 1 });
const c = model.config;
const lora = createLora(trainShape(c, model.ropeLayout), c.numLayers, Number(values.rank), 2 * Number(values.rank), 1);
const a = values.activations;
const policy: ActivationPolicy = a === 'keep' || a === 'recompute' ? a : { keepUpTo: Number(a) };
if (typeof policy === 'object' && !(Number.isInteger(policy.keepUpTo) && policy.keepUpTo >= 1)) throw new RangeError(`--activations ${a}: recompute, keep, or a count ≥ 1`);
const policyName = typeof policy === 'object' ? `up to ${policy.keepUpTo} kept` : policy;
const S = values.stages === undefined ? 0 : Number(values.stages);
const middle = values.layers === undefined ? null : { startLayer: Number(values.layers.split(':')[0]), endLayer: Number(values.layers.split(':')[1]) };
if (middle && !(middle.startLayer >= 1 && middle.endLayer > middle.startLayer && middle.endLayer < c.numLayers)) {
  throw new RangeError(`--layers ${values.layers}: a middle stage's A:B with 1 ≤ A < B < ${c.numLayers} (hidden states in and out)`);
}
const gemm = await KernelGemm.create(runtime);
const freeze = (w: WeightMatrix) => quantisedFrozen(runtime, w);
/** A range's trainer as stage-training-job.ts builds it: weights of its own, products on the engine's blocks. */
const rangeTrainer = async (range: { startLayer: number; endLayer: number }) =>
  new LayerRangeTrainer(frozenRange(await loadShardWeights(model, range, runtime), model.ropeLayout, gemm, freeze), lora.layers.slice(range.startLayer, range.endLayer), {
    activations: policy,
    adamw: { ...ADAMW_DEFAULTS, lr: 1e-3 },
  });
// The engine's prefill over the layers measured: the whole model, or the middle stage's range.
const shard = new QuantShard(await loadShardWeights(model, middle ?? { startLayer: 0, endLayer: c.numLayers }, runtime), runtime, model.ropeLayout);
let oneStep: (batch: TrainSequence[]) => Promise<void>;
let how: string;
if (middle) {
  const trainer = await rangeTrainer(middle);
  const H = c.hiddenSize;
  // A middle stage's order in 1F1B with `window` micro-batches in flight: the first forwards, then a backward and a forward in turn.
  const window = Number(values.window);
  // Its inputs and output gradients made once, outside the timing (as the prefill's hidden states are).
  const xs = Array.from({ length: B }, (_, k) => Float32Array.from({ length: T * H }, (_, i) => Math.sin(i * 0.37 + k)));
  const grads = Array.from({ length: B }, (_, k) => Float32Array.from({ length: T * H }, (_, i) => 1e-3 * Math.cos(i * 0.11 + k)));
  oneStep = async (batch) => {
    const back = (k: number) => trainer.backward(k, grads[k]);
    let b = 0;
    for (let k = 0; k < batch.length; k++) {
      if (k >= window) back(b++);
      trainer.forward(k, xs[k], T);
    }
    while (b < batch.length) back(b++);
    trainer.step(null);
  };
  how = `a middle stage [${middle.startLayer},${middle.endLayer}) alone (${policyName}, ${window} in flight; no head)`;
} else if (S > 0) {
  const ends = frozenEnds(await loadModelEnds(model, runtime), c, model.ropeLayout, gemm, freeze);
  const stages: TrainingStage[] = [];
  for (let s = 0; s < S; s++) {
    const range = { startLayer: Math.floor((s * c.numLayers) / S), endLayer: Math.floor(((s + 1) * c.numLayers) / S) };
    stages.push(new LocalTrainingStage(`stage ${s}`, range.startLayer, range.endLayer, await rangeTrainer(range)));
  }
  oneStep = async (batch) => void (await pipelinedStep(ends, stages, batch, 1));
  how = `${S} stages (${stages.map((st) => `[${st.startLayer},${st.endLayer})`).join(' ')}, ${policyName})`;
} else {
  // As runFinetune: weights of its own, the products on the engine's blocks (the file's own, and Q8_0 transposes).
  const frozen = frozenModel(await loadShardWeights(model, { startLayer: 0, endLayer: c.numLayers }, runtime), model.ropeLayout, gemm, freeze);
  const opt = new AdamW(lora, { ...ADAMW_DEFAULTS, lr: 1e-3 });
  oneStep = async (batch) => void trainStep(frozen, lora, opt, batch, 1);
  how = 'one device';
}
let seed = 7;
const token = () => 1 + ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % (c.vocabSize - 1));
const seq = () => {
  const tokens = Int32Array.from({ length: T + 1 }, token);
  return { tokens, lossMask: Array.from({ length: T }, () => true) };
};

const hidden = Float32Array.from({ length: T * c.hiddenSize }, (_, i) => Math.sin(i * 0.37));

/** Wall and CPU seconds of f. */
async function timed(f: () => Promise<void> | void): Promise<{ wall: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await f();
  const cu = process.cpuUsage(c0);
  return { wall: (performance.now() - t0) / 1000, cpu: (cu.user + cu.system) / 1e6 };
}
const prefill = () =>
  timed(async () => {
    const cache = shard.createCache(T + 1);
    const input: ShardInput = middle ? { kind: 'hidden', hidden: hidden.slice(), n: T } : { kind: 'tokens', tokens: Array.from({ length: T }, token) };
    await shard.forward(input, cache);
    cache.clear();
  });
const train = () =>
  timed(async () => {
    await oneStep(Array.from({ length: B }, seq));
  });

await prefill();
await train();
const p: { wall: number; cpu: number }[] = [];
const t: { wall: number; cpu: number }[] = [];
for (let i = 0; i < runs; i++) {
  p.push(await prefill());
  t.push(await train());
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rate = (rs: { wall: number; cpu: number }[], tokens: number, k: 'wall' | 'cpu') => tokens / median(rs.map((r) => r[k]));
const pw = rate(p, T, 'wall'), pc = rate(p, T, 'cpu'), tw = rate(t, B * T, 'wall'), tc = rate(t, B * T, 'cpu');
console.log(`${c.name}: ${T}-token sequences, batch ${B}, rank ${values.rank}, ${how}, 1 thread, ${runs} runs; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(`prefill  ${pw.toFixed(0)} tok/s (${pc.toFixed(0)} per CPU-s)`);
console.log(`training ${tw.toFixed(0)} tok/s (${tc.toFixed(0)} per CPU-s)`);
console.log(`ratio    ${(tw / pw).toFixed(3)} wall, ${(tc / pc).toFixed(3)} CPU (goal ≥ 0.333)`);
await runtime.close();
await model.close();
