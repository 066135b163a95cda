import { createKernelRuntime, type KernelRuntime } from '@edge-node/kernels';
import { TrainingDoesNotFitError, type TrainingShape } from '@edge-node/partitioner';
import { loadModelEnds } from '../engine/shard-weights.js';
import { writeLoraAdapter } from '../model/lora-adapter-file.js';
import { LORA_PROJECTIONS, loraTargetName, type LoraAdapter } from '../model/lora-adapter.js';
import type { ModelFile } from '../model/model-file.js';
import type { EdgeHost } from '../network/edge-host.js';
import type { NodeLogger } from '../network/node-logger.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { checkFinetuneOptions, FinetuneBusyError, FinetuneMemoryError, type FinetuneStatus, type FinetuneJobReport, type FinetuneJobRequest, type FinetuneRunner, type PreparedFinetune } from '../training/finetune-request.js';
import { frozenEnds, trainShape } from '../training/frozen-model.js';
import { KernelGemm } from '../training/kernel-gemm.js';
import { targetDims, type LayerLora } from '../training/lora-set.js';
import { quantisedFrozen } from '../training/quantised-frozen.js';
import { openStageTrainingJob, type StageJobParams } from '../training/stage-training-job.js';
import type { TrainerState } from '../training/layer-range-trainer.js';
import { batchIndices } from '../training/batch-order.js';
import { keptActivations, modelEndsBytes, stageJobBytes } from '../training/job-memory.js';
import { parseTrainingJsonl } from '../training/training-data.js';
import { runTrainingLoop, type FinetuneProgress } from '../training/training-loop.js';
import { trainingSequences } from '../training/training-sequences.js';
import { LocalTrainingStage, type TrainingStage } from '../training/training-stage.js';
import type { TrainSequence } from '../training/transformer-grad.js';
import { FinetuneCheckpoint } from './finetune-checkpoint.js';
import type { Route } from './route.js';
import { RemoteTrainingStage, TrainingStageLostError } from './train-client.js';
import type { TrainingSplitChoice } from './training-split.js';
import { TimedTrainingStage } from './timed-training-stage.js';

export interface ClusterFinetuneOptions {
  host: EdgeHost;
  model: ModelFile;
  tokenizer: Tokenizer;
  fingerprint: string;
  /** The plan in force's route without the excluded nodes (Replanner.routeFor): its stages are the job's. */
  routeFor: (exclude: ReadonlySet<string>) => Promise<Route>;
  /**
   * The partitioner's training plan over the members without the excluded (training-split.ts), or null when a split
   * was given by hand (--split): then the job keeps routeFor's. Absent: always routeFor's.
   */
  trainingSplit?: (exclude: ReadonlySet<string>, job: TrainingShape) => TrainingSplitChoice | null;
  /** The training plan's price of a split given by hand (training-split.ts trainingRouteStepMs), null when it cannot say. */
  priceRoute?: (route: Route, job: TrainingShape) => number | null;
  nameOf: (peerId: string) => string;
  /** The memory a node reports available now (its load's availableMemoryBytes), or null when it has not said. */
  availableMemory: (peerId: string) => number | null;
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
 * 1F1B); the stages' slices are collected at the end into one adapter file. Every 10 steps the owner keeps a
 * checkpoint of the stages' states; a stage lost mid-job (up to `recoveries` times) is left out of a new split and
 * the job goes on from the last checkpoint — the same adapter as without the loss.
 */
export class ClusterFinetune implements FinetuneRunner {
  private running = false;
  private last: FinetuneStatus | null = null;

  constructor(private readonly opts: ClusterFinetuneOptions) {}

  /** A job this node owns is running. */
  get busy(): boolean {
    return this.running;
  }

  status(): FinetuneStatus | null {
    return this.last && { ...this.last, losses: [...this.last.losses] };
  }

  async prepare(req: FinetuneJobRequest): Promise<PreparedFinetune> {
    checkFinetuneOptions(req);
    if (this.running) throw new FinetuneBusyError('a fine-tuning job is running on this node already; wait for it to finish');
    const examples = parseTrainingJsonl(req.data, req.source);
    const sequences = trainingSequences(examples, this.opts.model, this.opts.tokenizer, req.source);
    const rows = longest(sequences);
    this.checkMemory((await this.split(new Set(), req, sequences)).places, req, rows);
    return { examples: examples.length, run: (onProgress, signal, onNotice) => this.run(req, sequences, onProgress, signal, onNotice ?? (() => {})) };
  }

  private async run(req: FinetuneJobRequest, sequences: TrainSequence[], onProgress: (p: FinetuneProgress) => void, signal: AbortSignal, onNotice: (message: string) => void): Promise<FinetuneJobReport> {
    if (this.running) throw new FinetuneBusyError('a fine-tuning job is running on this node already; wait for it to finish');
    this.running = true;
    const status: FinetuneStatus = { state: 'running', step: 0, steps: req.steps, losses: [], tokensPerSecond: 0, stages: '', message: null };
    this.last = status;
    const { model, log } = this.opts;
    const c = model.config;
    let runtime: KernelRuntime | null = null;
    let stages: TrainingStage[] = [];
    const closeStages = async () => {
      await Promise.all(stages.map((s) => s.close().catch(() => {})));
      stages = [];
    };
    try {
      runtime = await createKernelRuntime({ threads: this.opts.threads });
      const gemm = await KernelGemm.create(runtime);
      const kernels = runtime;
      const ends = frozenEnds(await loadModelEnds(model, kernels), c, model.ropeLayout, gemm, (w) => quantisedFrozen(kernels, w));
      const job = globalThis.crypto.randomUUID();
      const params: StageJobParams = { rank: req.rank, alpha: req.alpha, lr: req.lr, seed: req.seed };
      const shape = trainShape(c, model.ropeLayout);
      const dims = LORA_PROJECTIONS.map((t) => targetDims(shape, t));
      const start = performance.now();
      const losses: number[] = [];
      const excluded = new Set<string>();
      // Set from the step callback: a holder, so that the loop below reads what the callback last kept.
      const saved: { checkpoint: FinetuneCheckpoint | null } = { checkpoint: null };
      let split: StagePlace[] = [];
      let predictedStepMs: number | null = null;
      let stepMs = 0;
      for (let attempt = 0; ; attempt++) {
        const chosen = await this.split(excluded, req, sequences);
        split = chosen.places;
        predictedStepMs = chosen.stepMs;
        status.stages = split.map((s) => `${s.name}[${s.startLayer},${s.endLayer})`).join(' → ');
        const from = saved.checkpoint?.step ?? 0;
        log.info(`training: job ${job} on ${status.stages} (${chosen.why}), ${sequences.length} examples, steps ${from + 1}–${req.steps} of ${req.batch}`);
        // The job's first line says which split the partitioner chose and why (a split given by hand is only logged).
        if (attempt === 0 && chosen.planned) onNotice(chosen.why);
        // The first step of an attempt warms up (its kernels compiled, its arrays first made): the steps after it are timed.
        let firstDoneAt: number | null = null;
        try {
          const timed = (await this.openStages(split, `${job}-${attempt}`, { ...params, rows: longest(sequences) }, dims, saved.checkpoint)).map((s) => new TimedTrainingStage(s));
          stages = timed;
          const result = await runTrainingLoop({
            ends,
            stages,
            sequences,
            steps: req.steps,
            startStep: from,
            batch: req.batch,
            seed: req.seed,
            maxGradNorm: 1,
            // Each step's loss as it comes: steps redone after a loss give the same values again.
            onProgress: (p) => {
              firstDoneAt ??= performance.now();
              losses[p.step - 1] = p.loss;
              Object.assign(status, { step: p.step, tokensPerSecond: p.tokensPerSecond, losses: losses.slice(0, p.step) });
              onProgress(p);
            },
            checkStopped: () => {
              if (signal.aborted) throw new FinetuneStoppedError('the fine-tuning job was stopped: its client went away');
            },
            onStepDone: async (done) => {
              if (done % CHECKPOINT_EVERY === 0 && done < req.steps) saved.checkpoint = await FinetuneCheckpoint.take(stages, done);
            },
          });
          losses.length = from + result.losses.length;
          const after = result.losses.length - 1;
          stepMs = after > 0 && firstDoneAt !== null ? (performance.now() - firstDoneAt) / after : 1000 * result.seconds;
          // Where the steps went, as the owner waited for each stage (hops and relay included), beside the plan's price.
          const predicted = predictedStepMs === null ? 'not priced' : `predicted ${predictedStepMs.toFixed(1)} ms`;
          log.info(`training: job ${job}: ${stepMs.toFixed(1)} ms per step (${predicted}); per step, ms: ${timed.map((s) => `${s.name}: ${s.perStep(result.losses.length)}`).join('; ')}`);
          break;
        } catch (err) {
          await closeStages();
          if (!(err instanceof TrainingStageLostError) || attempt >= req.recoveries) throw err;
          excluded.add(err.peerId);
          const notice = `${err.message}; going on without it from step ${saved.checkpoint?.step ?? 0} (its last checkpoint)`;
          log.warn(`training: ${notice}`);
          status.message = notice;
          onNotice(notice);
        }
      }
      const slices = (await Promise.all(stages.map((s) => s.exportSlice()))).flat();
      const seconds = (performance.now() - start) / 1000;
      const tokens = trainedTokens(sequences, req);
      Object.assign(status, { state: 'done', losses: [...losses], tokensPerSecond: tokens / seconds });
      return {
        examples: sequences.length,
        parameters: slices.reduce((n, l) => n + LORA_PROJECTIONS.reduce((m, t) => m + l[t].a.length + l[t].b.length, 0), 0),
        losses,
        tokens,
        seconds,
        tokensPerSecond: tokens / seconds,
        stepMs,
        predictedStepMs,
        stages: split.map((s) => ({ name: s.name, startLayer: s.startLayer, endLayer: s.endLayer })),
        adapter: writeLoraAdapter(assemble(slices, req.rank, req.alpha), model),
      };
    } catch (err) {
      Object.assign(status, { state: 'failed', message: (err as Error).message });
      throw err;
    } finally {
      await closeStages();
      await runtime?.close();
      this.running = false;
    }
  }

  /**
   * Refuses a job a node of its split has not the memory for (what it reports available now), before anything starts:
   * each stage's copy of its layers, their transposes, its slice with its gradients and moments, its activations
   * (job-memory.ts); the owner's copy of the model's ends besides.
   */
  private checkMemory(split: readonly StagePlace[], req: FinetuneJobRequest, rows: number): void {
    const { model, host } = this.opts;
    const c = model.config;
    const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
    const ends = modelEndsBytes(c, model.tensors);
    const places = split.some((s) => s.peerId === host.peerId) ? split : [...split, { peerId: host.peerId, name: this.opts.nameOf(host.peerId), startLayer: 0, endLayer: 0 }];
    for (const s of places) {
      const stage = s.endLayer > s.startLayer ? stageJobBytes(c, model.tensors, s, req.rank, rows, split.length) : null;
      const owner = s.peerId === host.peerId ? ends : 0;
      const need = (stage?.total ?? 0) + owner;
      const available = this.opts.availableMemory(s.peerId);
      if (available === null || need <= available) continue;
      const parts = [
        ...(stage ? [`${mb(stage.weights)} of weights`, `${mb(stage.transposes)} of transposes`, `${mb(stage.adapter)} of adapter and optimiser`, `${mb(stage.activations)} of activations`] : []),
        ...(owner > 0 ? [`${mb(owner)} of embeddings and head (the owner's)`] : []),
      ];
      const what = stage ? `stage ${s.name} (layers [${s.startLayer}, ${s.endLayer}))` : `the owner ${s.name}`;
      throw new FinetuneMemoryError(`${what} would need ${mb(need)} for this job (${parts.join(', ')}) but has ${mb(available)} available: ${mb(need - available)} short`);
    }
  }

  /**
   * The job's stages without the nodes lost during it: the partitioner's training plan over the members (priced for
   * this job: its longest sequence, batch and rank), or the split given by hand (the serving route of the plan in force).
   */
  private async split(excluded: ReadonlySet<string>, req: FinetuneJobRequest, sequences: readonly TrainSequence[]): Promise<{ places: StagePlace[]; why: string; planned: boolean; stepMs: number | null }> {
    let planned: TrainingSplitChoice | null = null;
    const job: TrainingShape = { sequenceTokens: longest(sequences), meanTokens: meanRows(sequences), microBatches: req.batch, rank: req.rank, lossTokens: meanCounted(sequences) };
    try {
      planned = this.opts.trainingSplit?.(excluded, job) ?? null;
    } catch (err) {
      if (err instanceof TrainingDoesNotFitError) throw new FinetuneMemoryError(err.message);
      throw err;
    }
    if (planned) return { places: planned.stages, why: planned.why, planned: true, stepMs: planned.stepMs };
    const route = await this.opts.routeFor(excluded);
    const places = route.peers.map((peerId, i) => ({ peerId, name: this.opts.nameOf(peerId), startLayer: route.ranges[i][0], endLayer: route.ranges[i][1] }));
    const stepMs = this.opts.priceRoute?.(route, job) ?? null;
    const priced = stepMs === null ? '' : `; the training plan prices it at ${stepMs.toFixed(0)} ms per step`;
    return { places, why: `the serving plan's split, given by hand (--split)${priced}`, planned: false, stepMs };
  }

  private async openStages(split: readonly StagePlace[], job: string, params: StageJobParams & { rows: number }, dims: { inDim: number; outDim: number }[], checkpoint: FinetuneCheckpoint | null): Promise<TrainingStage[]> {
    const { rows, ...common } = params;
    const opened = await Promise.allSettled(
      split.map((s) => this.openStage(s, job, { ...common, keep: this.keptOn(s, split.length, params.rank, rows) }, dims, checkpoint?.slice(s.startLayer, s.endLayer))),
    );
    const stages = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    const failed = opened.find((o) => o.status === 'rejected');
    if (failed) {
      await Promise.all(stages.map((s) => s.close().catch(() => {})));
      throw failed.reason;
    }
    return stages;
  }

  /**
   * How many micro-batches' activations a stage keeps (job-memory.ts keptActivations): as many as are in flight (one
   * per stage, so nothing is recomputed) when the memory its node reports available holds them beside the rest of
   * its job (and, on the owner, the model's ends); else fewer, down to 1.
   */
  private keptOn(s: StagePlace, inFlight: number, rank: number, rows: number): number {
    const { model, host } = this.opts;
    const reported = this.opts.availableMemory(s.peerId);
    const available = reported === null ? null : reported - (s.peerId === host.peerId ? modelEndsBytes(model.config, model.tensors) : 0);
    return keptActivations(model.config, model.tensors, s, rank, rows, inFlight, available);
  }

  private async openStage(s: StagePlace, job: string, params: StageJobParams, dims: { inDim: number; outDim: number }[], resume: TrainerState | undefined): Promise<TrainingStage> {
    const range = { startLayer: s.startLayer, endLayer: s.endLayer };
    if (s.peerId !== this.opts.host.peerId) return RemoteTrainingStage.open(this.opts.host, s, range, job, this.opts.fingerprint, params, dims, resume);
    const local = await openStageTrainingJob(this.opts.model, range, params, this.opts.threads, resume);
    return new LocalTrainingStage(`${s.name} (layers [${s.startLayer}, ${s.endLayer}))`, s.startLayer, s.endLayer, local.trainer, () => local.close());
  }
}

/** Steps between the checkpoints a job keeps on its owner (each costs a copy of the adapter and its moments). */
const CHECKPOINT_EVERY = 10;

/** A stage of a job's split: who, and which layers. */
interface StagePlace {
  peerId: string;
  name: string;
  startLayer: number;
  endLayer: number;
}

/** The longest sequence's rows (its tokens but the last): what a micro-batch's memory and cost are priced with. */
function longest(sequences: readonly TrainSequence[]): number {
  return Math.max(...sequences.map((s) => s.tokens.length - 1));
}

/** Rows per sequence on average: what the plan prices a micro-batch's compute with (each costs its own rows). */
function meanRows(sequences: readonly TrainSequence[]): number {
  return sequences.reduce((n, s) => n + s.tokens.length - 1, 0) / sequences.length;
}

/** Rows per sequence the loss counts, on average: the head and the loss run on those only (the plan prices them). */
function meanCounted(sequences: readonly TrainSequence[]): number {
  let n = 0;
  for (const s of sequences) for (const m of s.lossMask) if (m) n++;
  return n / sequences.length;
}

/** Tokens through the model over the job's steps (every position of each batch's sequences). */
function trainedTokens(sequences: readonly TrainSequence[], req: FinetuneJobRequest): number {
  let n = 0;
  for (let step = 0; step < req.steps; step++) for (const i of batchIndices(sequences.length, req.batch, step, req.seed)) n += sequences[i].tokens.length - 1;
  return n;
}

/** The stages' slices, in layer order, as one adapter. */
function assemble(layers: LayerLora[], rank: number, alpha: number): LoraAdapter {
  const tensors: LoraAdapter['tensors'] = new Map();
  layers.forEach((l, i) => {
    for (const t of LORA_PROJECTIONS) tensors.set(loraTargetName(i, t), { rank, a: Float32Array.from(l[t].a), b: Float32Array.from(l[t].b) });
  });
  return { alpha, tensors };
}
