/**
 * A training change measured against a base in one process (issue 26's before and after without two processes'
 * different machine states): the training modules of this tree and of another checkout of the repository (--base,
 * e.g. a worktree of main) imported side by side, the same adapter and inputs, their steps alternating (which goes
 * first alternates too), the engine's prefill of the same layers before each pair. One thread.
 *
 *   npx tsx scripts/bench-training-ab.ts --base DIR [--model PATH] [--tokens T] [--batch B] [--layers A:B] [--runs N]
 *
 * Without --layers a step is one device's (trainStep: forward, loss, backward, clipping, AdamW on B sequences); with
 * it, a middle stage's alone (B micro-batches in 1F1B order with 2 in flight, activations kept, then its step), as
 * bench-training.ts. Prints CPU-time rates (medians), each tree's ratio to the prefill, the median of the paired
 * after/before CPU time per step, and the least CPU time per step of each (and of the prefill) with their ratios.
 * The base must have the same module layout (training/*.ts as here). Both trees share one heap, so a change in how much
 * a step leaves to the garbage collector lands in either tree's steps: check such a change as separate processes
 * (bench-training.ts of each tree, alternating), as grouping a batch's sequences was (faster here, slower there).
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createKernelRuntime, type WeightMatrix } from '@edge-node/kernels';
import type { ShardInput } from '../packages/node/src/engine/forward-shard.js';
import { QuantShard } from '../packages/node/src/engine/quant-shard.js';
import { loadShardWeights } from '../packages/node/src/engine/shard-weights.js';
import { openModel } from '../packages/node/src/model/open-model.js';
import type { TrainSequence } from '../packages/node/src/training/transformer-grad.js';

type Modules = {
  frozen: typeof import('../packages/node/src/training/frozen-model.js');
  gemm: typeof import('../packages/node/src/training/kernel-gemm.js');
  quantised: typeof import('../packages/node/src/training/quantised-frozen.js');
  lora: typeof import('../packages/node/src/training/lora-set.js');
  range: typeof import('../packages/node/src/training/layer-range-trainer.js');
  adamw: typeof import('../packages/node/src/training/adamw.js');
  step: typeof import('../packages/node/src/training/train-step.js');
};

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    model: { type: 'string', default: 'packages/node/models/stories260K.gguf' },
    tokens: { type: 'string', default: '64' },
    batch: { type: 'string', default: '4' },
    layers: { type: 'string' },
    runs: { type: 'string', default: '21' },
  },
});
if (!values.base) throw new RangeError('--base DIR: a checkout of the repository to compare against (its packages/node/src)');
const T = Number(values.tokens);
const B = Number(values.batch);
const runs = Number(values.runs);

/** A tree's training modules; the base's are taken to have this tree's shapes (same layout, --base's contract). */
async function modules(root: string): Promise<Modules> {
  const at = (p: string) => import(`${root}/packages/node/src/training/${p}.ts`);
  return {
    frozen: (await at('frozen-model')) as Modules['frozen'],
    gemm: (await at('kernel-gemm')) as Modules['gemm'],
    quantised: (await at('quantised-frozen')) as Modules['quantised'],
    lora: (await at('lora-set')) as Modules['lora'],
    range: (await at('layer-range-trainer')) as Modules['range'],
    adamw: (await at('adamw')) as Modules['adamw'],
    step: (await at('train-step')) as Modules['step'],
  };
}

const runtime = await createKernelRuntime({ threads: 1 });
const model = await openModel(values.model);
const c = model.config;
const middle = values.layers === undefined ? null : { startLayer: Number(values.layers.split(':')[0]), endLayer: Number(values.layers.split(':')[1]) };
if (middle && !(middle.startLayer >= 1 && middle.endLayer > middle.startLayer && middle.endLayer < c.numLayers)) {
  throw new RangeError(`--layers ${values.layers}: a middle stage's A:B with 1 ≤ A < B < ${c.numLayers}`);
}
const shard = new QuantShard(await loadShardWeights(model, middle ?? { startLayer: 0, endLayer: c.numLayers }, runtime), runtime, model.ropeLayout);
let seed = 7;
const token = () => 1 + ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % (c.vocabSize - 1));
const batch = (): TrainSequence[] => Array.from({ length: B }, () => ({ tokens: Int32Array.from({ length: T + 1 }, token), lossMask: Array.from({ length: T }, () => true) }));
const H = c.hiddenSize;
const xs = Array.from({ length: B }, (_, k) => Float32Array.from({ length: T * H }, (_, i) => Math.sin(i * 0.37 + k)));
const grads = Array.from({ length: B }, (_, k) => Float32Array.from({ length: T * H }, (_, i) => 1e-3 * Math.cos(i * 0.11 + k)));

/** One step of a tree's training, built as bench-training.ts builds it (weights of its own, the engine's blocks). */
async function stepOf(m: Modules): Promise<() => void> {
  const gemm = await m.gemm.KernelGemm.create(runtime);
  const freeze = (w: WeightMatrix) => m.quantised.quantisedFrozen(runtime, w);
  const lora = m.lora.createLora(m.frozen.trainShape(c, model.ropeLayout), c.numLayers, 8, 16, 1);
  if (middle) {
    const frozen = m.frozen.frozenRange(await loadShardWeights(model, middle, runtime), model.ropeLayout, gemm, freeze);
    const trainer = new m.range.LayerRangeTrainer(frozen, lora.layers.slice(middle.startLayer, middle.endLayer), { activations: 'keep', adamw: { ...m.adamw.ADAMW_DEFAULTS, lr: 1e-3 } });
    return () => {
      let b = 0;
      for (let k = 0; k < B; k++) {
        if (k >= 2) trainer.backward(b, grads[b++]);
        trainer.forward(k, xs[k], T);
      }
      while (b < B) trainer.backward(b, grads[b++]);
      trainer.step(null);
    };
  }
  const frozen = m.frozen.frozenModel(await loadShardWeights(model, { startLayer: 0, endLayer: c.numLayers }, runtime), model.ropeLayout, gemm, freeze);
  const opt = new m.adamw.AdamW(lora, { ...m.adamw.ADAMW_DEFAULTS, lr: 1e-3 });
  return () => void m.step.trainStep(frozen, lora, opt, batch(), 1);
}

const steps = { before: await stepOf(await modules(values.base)), after: await stepOf(await modules(new URL('..', import.meta.url).pathname.replace(/\/$/, ''))) };
const hidden = Float32Array.from({ length: T * H }, (_, i) => Math.sin(i * 0.37));
async function cpuSeconds(f: () => unknown): Promise<number> {
  const c0 = process.cpuUsage();
  await f();
  const u = process.cpuUsage(c0);
  return (u.user + u.system) / 1e6;
}
const prefill = () =>
  cpuSeconds(async () => {
    const cache = shard.createCache(T + 1);
    const input: ShardInput = middle ? { kind: 'hidden', hidden: hidden.slice(), n: T } : { kind: 'tokens', tokens: Array.from({ length: T }, token) };
    await shard.forward(input, cache);
    cache.clear();
  });

await prefill();
steps.before();
steps.after();
const load0 = loadavg()[0];
const p: number[] = [];
const t = { before: [] as number[], after: [] as number[] };
for (let i = 0; i < runs; i++) {
  p.push(await prefill());
  for (const k of i % 2 === 0 ? (['before', 'after'] as const) : (['after', 'before'] as const)) t[k].push(await cpuSeconds(steps[k]));
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const pr = T / median(p);
const rate = (k: 'before' | 'after') => (B * T) / median(t[k]);
const paired = t.after.map((a, i) => a / t.before[i]);
const how = middle ? `a middle stage [${middle.startLayer},${middle.endLayer})` : 'one device';
console.log(`${c.name}: ${how}, ${T} × ${B}, ${runs} runs, 1 thread; load ${load0.toFixed(2)} → ${loadavg()[0].toFixed(2)}`);
console.log(`prefill ${pr.toFixed(0)} tok per CPU-s; training before ${rate('before').toFixed(0)}, after ${rate('after').toFixed(0)}`);
console.log(`ratio   before ${(rate('before') / pr).toFixed(3)}, after ${(rate('after') / pr).toFixed(3)} (goal ≥ 0.333)`);
console.log(`after/before CPU per step: median ${median(paired).toFixed(3)} (${Math.min(...paired).toFixed(3)}–${Math.max(...paired).toFixed(3)})`);
// The least CPU a step took: on a shared machine the least disturbed one (another process's load, or garbage
// collection threads' time landing in a step, only add to it).
const least = (k: 'before' | 'after') => Math.min(...t[k]);
console.log(`least CPU per step: before ${(1e3 * least('before')).toFixed(1)} ms, after ${(1e3 * least('after')).toFixed(1)} ms (after/before ${(least('after') / least('before')).toFixed(3)}); prefill ${(1e3 * Math.min(...p)).toFixed(1)} ms, ratio at the least ${((B * T) / least('before') / (T / Math.min(...p))).toFixed(3)} → ${((B * T) / least('after') / (T / Math.min(...p))).toFixed(3)}`);
await runtime.close();
await model.close();
