import { createKernelRuntime } from '@edge-node/kernels';
import { loadModelEnds } from '../engine/shard-weights.js';
import { writeLoraAdapter } from '../model/lora-adapter-file.js';
import { LORA_PROJECTIONS, loraTargetName, type LoraAdapter } from '../model/lora-adapter.js';
import type { ModelFile } from '../model/model-file.js';
import type { EdgeHost } from '../network/edge-host.js';
import type { NodeLogger } from '../network/node-logger.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { checkFinetuneOptions, FinetuneBusyError, type FinetuneJobReport, type FinetuneJobRequest, type FinetuneRunner, type PreparedFinetune } from '../training/finetune-request.js';
import { frozenEnds, trainShape } from '../training/frozen-model.js';
import { KernelGemm } from '../training/kernel-gemm.js';
import { targetDims, type LayerLora } from '../training/lora-set.js';
import { quantisedFrozen } from '../training/quantised-frozen.js';
import { openStageTrainingJob, type StageJobParams } from '../training/stage-training-job.js';
import { parseTrainingJsonl } from '../training/training-data.js';
import { runTrainingLoop, type FinetuneProgress } from '../training/training-loop.js';
import { trainingSequences } from '../training/training-sequences.js';
import { LocalTrainingStage, type TrainingStage } from '../training/training-stage.js';
import type { TrainSequence } from '../training/transformer-grad.js';
import type { ClusterPlan } from './cluster-plan.js';
import { RemoteTrainingStage } from './train-client.js';

export interface ClusterFinetuneOptions {
  host: EdgeHost;
  model: ModelFile;
  tokenizer: Tokenizer;
  fingerprint: string;
  /** The plan in force: its stages and their layer ranges are the job's. */
  currentPlan: () => Promise<ClusterPlan>;
  /** Kernel threads of this node's products (its --threads). */
  threads: number;
  log: NodeLogger;
}

/** The job was stopped (its client went away). */
export class FinetuneStoppedError extends Error {
  override name = 'FinetuneStoppedError';
}

/**
 * Fine-tuning through the cluster's pipeline, driven by this node, the data's owner: it keeps the data, the tokenizer,
 * the embeddings, the final norm, the head, the labels and the loss; each stage of the plan in force trains its layer
 * range with its slice of the adapter (this node's own directly, the others over `/edge-node/train/1.0.0`, which
 * carries hidden states and their gradients only). Steps run pipelinedStep (one micro-batch in flight per stage,
 * 1F1B); the stages' slices are collected at the end into one adapter file.
 */
export class ClusterFinetune implements FinetuneRunner {
  private running = false;

  constructor(private readonly opts: ClusterFinetuneOptions) {}

  async prepare(req: FinetuneJobRequest): Promise<PreparedFinetune> {
    checkFinetuneOptions(req);
    if (this.running) throw new FinetuneBusyError('a fine-tuning job is running on this node already; wait for it to finish');
    const examples = parseTrainingJsonl(req.data, req.source);
    const sequences = trainingSequences(examples, this.opts.model, this.opts.tokenizer, req.source);
    return { examples: examples.length, run: (onProgress, signal) => this.run(req, sequences, onProgress, signal) };
  }

  private async run(req: FinetuneJobRequest, sequences: TrainSequence[], onProgress: (p: FinetuneProgress) => void, signal: AbortSignal): Promise<FinetuneJobReport> {
    if (this.running) throw new FinetuneBusyError('a fine-tuning job is running on this node already; wait for it to finish');
    this.running = true;
    const { model, log } = this.opts;
    const c = model.config;
    const runtime = await createKernelRuntime({ threads: this.opts.threads });
    const stages: TrainingStage[] = [];
    try {
      const plan = await this.opts.currentPlan();
      const gemm = await KernelGemm.create(runtime);
      const ends = frozenEnds(await loadModelEnds(model, runtime), c, model.ropeLayout, gemm, (w) => quantisedFrozen(runtime, w));
      const job = globalThis.crypto.randomUUID();
      const params: StageJobParams = { rank: req.rank, alpha: req.alpha, lr: req.lr, seed: req.seed };
      const shape = trainShape(c, model.ropeLayout);
      const dims = LORA_PROJECTIONS.map((t) => targetDims(shape, t));
      log.info(`training: job ${job} on ${plan.stages.map((s) => `${s.name}[${s.startLayer},${s.endLayer})`).join(' → ')}, ${sequences.length} examples, ${req.steps} steps of ${req.batch}`);
      const opened = await Promise.allSettled(plan.stages.map((s) => this.openStage(s, job, params, dims)));
      for (const o of opened) if (o.status === 'fulfilled') stages.push(o.value);
      const failed = opened.find((o) => o.status === 'rejected');
      if (failed) throw failed.reason;
      const result = await runTrainingLoop({
        ends,
        stages,
        sequences,
        steps: req.steps,
        batch: req.batch,
        seed: req.seed,
        maxGradNorm: 1,
        onProgress,
        checkStopped: () => {
          if (signal.aborted) throw new FinetuneStoppedError('the fine-tuning job was stopped: its client went away');
        },
      });
      const slices = await Promise.all(stages.map((s) => s.exportSlice()));
      const adapter = assemble(slices.flat(), req.rank, req.alpha);
      const parameters = slices.flat().reduce((n, l) => n + LORA_PROJECTIONS.reduce((m, t) => m + l[t].a.length + l[t].b.length, 0), 0);
      return {
        examples: sequences.length,
        parameters,
        losses: result.losses,
        tokens: result.tokens,
        seconds: result.seconds,
        tokensPerSecond: result.tokens / result.seconds,
        stages: plan.stages.map((s) => ({ name: s.name, startLayer: s.startLayer, endLayer: s.endLayer })),
        adapter: writeLoraAdapter(adapter, model),
      };
    } finally {
      await Promise.all(stages.map((s) => s.close().catch(() => {})));
      await runtime.close();
      this.running = false;
    }
  }

  private async openStage(s: ClusterPlan['stages'][number], job: string, params: StageJobParams, dims: { inDim: number; outDim: number }[]): Promise<TrainingStage> {
    const range = { startLayer: s.startLayer, endLayer: s.endLayer };
    if (s.peerId !== this.opts.host.peerId) return RemoteTrainingStage.open(this.opts.host, s, range, job, this.opts.fingerprint, params, dims);
    const local = await openStageTrainingJob(this.opts.model, range, params, this.opts.threads);
    return new LocalTrainingStage(`${s.name} (layers [${s.startLayer}, ${s.endLayer}))`, s.startLayer, s.endLayer, local.trainer, () => local.close());
  }
}

/** The stages' slices, in layer order, as one adapter. */
function assemble(layers: LayerLora[], rank: number, alpha: number): LoraAdapter {
  const tensors: LoraAdapter['tensors'] = new Map();
  layers.forEach((l, i) => {
    for (const t of LORA_PROJECTIONS) tensors.set(loraTargetName(i, t), { rank, a: Float32Array.from(l[t].a), b: Float32Array.from(l[t].b) });
  });
  return { alpha, tensors };
}
