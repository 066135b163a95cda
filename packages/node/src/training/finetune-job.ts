import { access, constants, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createKernelRuntime } from '@edge-node/kernels';
import { loadShardWeights } from '../engine/shard-weights.js';
import { writeLoraAdapter } from '../model/lora-adapter-file.js';
import { openModel } from '../model/open-model.js';
import { loadTokenizer } from '../tokenizer/load-tokenizer.js';
import { toLoraAdapter } from './adapter-export.js';
import { ADAMW_DEFAULTS } from './adamw.js';
import { frozenModel, trainShape } from './frozen-model.js';
import { KernelGemm } from './kernel-gemm.js';
import { checkTransposesFit, quantisedFrozen } from './quantised-frozen.js';
import { createLora, type LoraSet } from './lora-set.js';
import { checkFinetuneOptions, FinetuneOptionError } from './finetune-request.js';
import { LayerRangeTrainer } from './layer-range-trainer.js';
import { loraParameterCount } from './train-step.js';
import { runTrainingLoop, type FinetuneProgress } from './training-loop.js';

export type { FinetuneProgress } from './training-loop.js';
import { LocalTrainingStage } from './training-stage.js';
import { parseTrainingJsonl, TrainingDataError } from './training-data.js';
import { trainingSequences } from './training-sequences.js';

export interface FinetuneOptions {
  model: string;
  data: string;
  out: string;
  rank: number;
  alpha: number;
  lr: number;
  steps: number;
  batch: number;
  /** Seeds the adapter's A and the data order (default 0). */
  seed?: number;
  /** Gradients are scaled to at most this global L2 norm (default 1). */
  maxGradNorm?: number;
  /** Kernel threads for the products (default: the device's cores, as the engine). */
  threads?: number;
  onProgress?: (p: FinetuneProgress) => void;
}

export interface FinetuneReport {
  examples: number;
  parameters: number;
  /**
   * Each step's batch loss before its update, from the training forward the gradients come from (the loss a cluster
   * reports too). That forward multiplies on the engine's own blocks; the served model's loss (engine-loss.ts) agrees
   * within 2e-4 on stories260K F32 and 5e-3 on its Q8_0 file, which training-model.test.ts checks rather than every
   * step paying a second forward for it.
   */
  losses: number[];
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  adapter: LoraSet;
}

async function readData(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new TrainingDataError(file, 0, `cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/**
 * `edge-node finetune` on this device alone: the data parsed and tokenised (a bad line is refused with its number
 * before any compute), the model's weights read into kernel arenas (the engine's blocks, which the gradients'
 * products use: quantised-frozen.ts), `steps` AdamW steps of `batch` sequences (each step's loss from its own training
 * forward, as on a cluster), and the adapter written in llama.cpp's LoRA GGUF format.
 */
export async function runFinetune(o: FinetuneOptions): Promise<FinetuneReport> {
  checkFinetuneOptions(o);
  // What can fail without compute fails first: the data file, and where the adapter goes.
  const examples = parseTrainingJsonl(await readData(o.data), o.data);
  await access(dirname(o.out), constants.W_OK).catch(() => {
    throw new FinetuneOptionError(`cannot write the adapter to ${o.out}: its folder does not exist or is not writable`);
  });
  const model = await openModel(o.model);
  const runtime = await createKernelRuntime(o.threads === undefined ? {} : { threads: o.threads });
  try {
    const tokenizer = await loadTokenizer(model.tokenizer);
    const sequences = trainingSequences(examples, model, tokenizer, o.data);
    const c = model.config;
    const lora = createLora(trainShape(c, model.ropeLayout), c.numLayers, o.rank, o.alpha, o.seed ?? 0);
    // The engine's own weights: the products of the gradients' forward and backward run on its blocks.
    const weights = await loadShardWeights(model, { startLayer: 0, endLayer: c.numLayers }, runtime);
    checkTransposesFit(weights);
    const frozen = frozenModel(weights, model.ropeLayout, await KernelGemm.create(runtime), (w) => quantisedFrozen(runtime, w));
    const trainer = new LayerRangeTrainer(frozen, lora.layers, { activations: 'keep', adamw: { ...ADAMW_DEFAULTS, lr: o.lr } });
    const stage = new LocalTrainingStage('this device', 0, c.numLayers, trainer);
    const { losses, tokens, seconds } = await runTrainingLoop({
      ends: frozen,
      stages: [stage],
      sequences,
      steps: o.steps,
      batch: o.batch,
      seed: o.seed ?? 0,
      maxGradNorm: o.maxGradNorm ?? 1,
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
    await writeFile(o.out, writeLoraAdapter(toLoraAdapter(lora), model));
    return { examples: examples.length, parameters: loraParameterCount(lora), losses, tokens, seconds, tokensPerSecond: tokens / seconds, adapter: lora };
  } finally {
    await runtime.close();
    await model.close();
  }
}
