/**
 * A training change's bits against a base (issue 26: a speed change must not change a bit): the training modules of
 * this tree and of another checkout (--base, e.g. a worktree of main) side by side in one process, the same seeded
 * adapter and batches (one with a prompt-masked start, one shorter, one with every third position masked), N steps
 * of one device's trainStep each; prints both trees' losses and whether the losses and the adapter bytes are equal.
 *
 *   npx tsx scripts/training-bits-ab.ts --base DIR [--model PATH] [--tokens T] [--steps N]
 *
 * Exits 1 when they differ. The base must have this tree's module layout (training/*.ts), as bench-training-ab.ts.
 */
import { parseArgs } from 'node:util';
import { createKernelRuntime, type WeightMatrix } from '@edge-node/kernels';
import { loadShardWeights } from '../packages/node/src/engine/shard-weights.js';
import { openModel } from '../packages/node/src/model/open-model.js';
import type { TrainSequence } from '../packages/node/src/training/transformer-grad.js';

type Modules = {
  frozen: typeof import('../packages/node/src/training/frozen-model.js');
  gemm: typeof import('../packages/node/src/training/kernel-gemm.js');
  quantised: typeof import('../packages/node/src/training/quantised-frozen.js');
  lora: typeof import('../packages/node/src/training/lora-set.js');
  adamw: typeof import('../packages/node/src/training/adamw.js');
  step: typeof import('../packages/node/src/training/train-step.js');
};

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    model: { type: 'string', default: 'packages/node/models/stories260K.gguf' },
    tokens: { type: 'string', default: '40' },
    steps: { type: 'string', default: '3' },
  },
});
if (!values.base) throw new RangeError('--base DIR: a checkout of the repository to compare against (its packages/node/src)');
const T = Number(values.tokens);

async function modules(root: string): Promise<Modules> {
  const at = (p: string) => import(`${root}/packages/node/src/training/${p}.ts`);
  return {
    frozen: (await at('frozen-model')) as Modules['frozen'],
    gemm: (await at('kernel-gemm')) as Modules['gemm'],
    quantised: (await at('quantised-frozen')) as Modules['quantised'],
    lora: (await at('lora-set')) as Modules['lora'],
    adamw: (await at('adamw')) as Modules['adamw'],
    step: (await at('train-step')) as Modules['step'],
  };
}

const runtime = await createKernelRuntime({ threads: 1 });
const model = await openModel(values.model);
const c = model.config;
let seed = 11;
const token = () => 1 + ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % (c.vocabSize - 1));
const batches: TrainSequence[][] = Array.from({ length: Number(values.steps) }, () => [
  { tokens: Int32Array.from({ length: T + 1 }, token), lossMask: Array.from({ length: T }, (_, i) => i >= 7) },
  { tokens: Int32Array.from({ length: T - 5 }, token), lossMask: Array.from({ length: T - 6 }, () => true) },
  { tokens: Int32Array.from({ length: T + 1 }, token), lossMask: Array.from({ length: T }, (_, i) => i % 3 !== 0) },
]);

/** A tree's losses and its adapter's bytes after the steps (weights of its own, the engine's blocks). */
async function run(root: string): Promise<{ losses: number[]; bytes: Buffer }> {
  const m = await modules(root);
  const gemm = await m.gemm.KernelGemm.create(runtime);
  const freeze = (w: WeightMatrix) => m.quantised.quantisedFrozen(runtime, w);
  const lora = m.lora.createLora(m.frozen.trainShape(c, model.ropeLayout), c.numLayers, 8, 16, 3);
  const frozen = m.frozen.frozenModel(await loadShardWeights(model, { startLayer: 0, endLayer: c.numLayers }, runtime), model.ropeLayout, gemm, freeze);
  const opt = new m.adamw.AdamW(lora, { ...m.adamw.ADAMW_DEFAULTS, lr: 1e-2 });
  const losses = batches.map((b) => m.step.trainStep(frozen, lora, opt, b, 1).loss);
  const bytes = Buffer.concat(m.lora.loraArrays(lora).map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)));
  await gemm.close();
  return { losses, bytes };
}

const base = await run(values.base);
const mine = await run(new URL('..', import.meta.url).pathname.replace(/\/$/, ''));
const same = base.losses.every((l, i) => Object.is(l, mine.losses[i])) && base.bytes.equals(mine.bytes);
console.log(`${c.name}: ${batches.length} steps of 3 sequences up to ${T} tokens`);
console.log(`losses base ${base.losses.join(' ')}`);
console.log(`losses this ${mine.losses.join(' ')}`);
console.log(`${same ? 'identical' : 'DIFFERENT'}: losses and ${base.bytes.length} adapter bytes`);
await runtime.close();
await model.close();
process.exitCode = same ? 0 : 1;
