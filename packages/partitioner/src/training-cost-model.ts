import type { Cluster } from './cluster.js';
import { LinkTable, validateCluster } from './cluster.js';
import type { ModelShape } from './model-shape.js';
import type { ModelProfile } from './model-profile.js';
import { modelProfile } from './model-profile.js';
import type { PlanningModel } from './planning-model.js';
import type { StageCosts } from './stage-costs.js';
import type { TrainingShape } from './training-shape.js';
import { normalizeTraining } from './training-shape.js';
import { loraProjectionDims, mostKeptThatFits, ownerEndsTrainingBytes, stageTrainingMemory, type StageTrainingMemory } from './training-memory.js';

/**
 * FLOPs of one training token through a layer, in forwards of that layer at the prefill rate, when the stage keeps
 * its micro-batches' activations from their forwards: the forward (1) and the backward (2: the input gradient through
 * each frozen matrix costs one forward's product, and attention's backward, the LoRA gradients and the elementwise
 * ops' gradients about another). So 3× a prefill token; the runtime measures 3–4.5× on a middle stage and 4–5× on
 * one device (docs/training.md, "Speed"), the difference being its fixed costs, which stepOverheadMs prices.
 */
export const TRAINING_FORWARDS_PER_TOKEN = 3;

/**
 * The forward again in the backward, for a stage whose node cannot hold the activations of all its micro-batches in
 * flight: it keeps fewer (down to 1) and recomputes the others' (layer-range-trainer.ts, { keepUpTo }).
 */
export const RECOMPUTE_FORWARDS_PER_TOKEN = 1;

/** Times a stage reads its range's weights per micro-batch when it keeps activations: the forward and the backward's transposes. */
export const TRAINING_WEIGHT_READS = 2;

/**
 * The head on the owner, in forwards of the head per token: logits for every token (not only the last one, as a
 * prefill), then the input gradient through the frozen head (one more product). Cross-entropy forward and backward
 * come on top: CROSS_ENTROPY_FLOPS_PER_VOCAB per token and vocabulary entry (max, exp, sum; softmax − one-hot).
 */
export const HEAD_FORWARDS_PER_TOKEN = 2;
const CROSS_ENTROPY_FLOPS_PER_VOCAB = 5;

/** Messages a stage handles per micro-batch (a forward frame and a backward frame): each pays its device's step cost. */
const FRAMES_PER_MICRO_BATCH = 2;

/**
 * Cost model of one training step of a LoRA job through a pipeline (roofline, as CostModel for serving). The ring
 * starts at the job's owner, which keeps the embeddings, the final norm, the head, the labels and the loss; a stage
 * [0, e) is therefore only allowed on the owner. Per micro-batch (one sequence of T tokens) a stage on d holding
 * [s, e) costs max(3 × its layers' forward FLOPs / d's prefill rate, 2 × its weights / d's bandwidth) plus two frames'
 * fixed cost, and one forward more (FLOPs and weights) when d cannot keep the activations of all its micro-batches in
 * flight (keptOn); the owner adds its ends; every hop of the ring carries T hidden states forward and T gradients back.
 */
export class TrainingCostModel implements PlanningModel {
  readonly L: number;
  readonly n: number;
  readonly profile: ModelProfile;
  readonly job: TrainingShape;
  /** Micro-batches in flight: what the throughput machinery divides the ring by. */
  readonly request: { readonly concurrency: number };
  private readonly links: LinkTable;
  private readonly pFlops: Float64Array;
  private readonly pAttn: Float64Array;
  private readonly pWeights: Float64Array;
  private readonly loraFlopsPerTokenLayer: number;
  private readonly inFlight: number;
  private readonly ownerEndsBytes: number;

  constructor(
    readonly shape: ModelShape,
    readonly cluster: Cluster,
    job: TrainingShape,
    /** Index in cluster.devices of the job's owner. */
    readonly owner: number,
  ) {
    validateCluster(cluster);
    this.profile = modelProfile(shape);
    this.job = normalizeTraining(job);
    this.L = shape.numLayers;
    this.n = cluster.devices.length;
    if (!Number.isInteger(owner) || owner < 0 || owner >= this.n) throw new RangeError(`owner index ${owner} is not a device of the cluster`);
    this.request = { concurrency: this.job.microBatches };
    this.links = new LinkTable(cluster);
    const L = this.L;
    this.pFlops = new Float64Array(L + 1);
    this.pAttn = new Float64Array(L + 1);
    this.pWeights = new Float64Array(L + 1);
    for (let i = 0; i < L; i++) {
      const l = this.profile.layers[i];
      this.pFlops[i + 1] = this.pFlops[i] + l.flopsPerToken;
      this.pAttn[i + 1] = this.pAttn[i] + l.attentionFlopsPerContextToken;
      this.pWeights[i + 1] = this.pWeights[i] + l.weightBytes;
    }
    // y += B·(A·x) on the seven projections: 2 FLOPs per multiply-add.
    this.loraFlopsPerTokenLayer = loraProjectionDims(shape).reduce((s, p) => s + 2 * this.job.rank * (p.inDim + p.outDim), 0);
    // The runtime keeps at most one micro-batch per stage in flight; a ring has at most min(n, micro-batches) stages.
    this.inFlight = Math.min(this.n, this.job.microBatches);
    const head = this.profile.head;
    this.ownerEndsBytes = ownerEndsTrainingBytes(shape, this.profile.embedding.weightBytes, shape.tiedEmbeddings ? 0 : head.weightBytes - shape.hiddenSize * 4);
  }

  /** Compute ms of one micro-batch's forward and backward through layers [s, e) on d, without the owner's ends. */
  layersMs(d: number, s: number, e: number): number {
    if (e <= s) return 0;
    const T = this.job.sequenceTokens;
    const dev = this.cluster.devices[d];
    const forward = (this.pFlops[e] - this.pFlops[s] + this.loraFlopsPerTokenLayer * (e - s)) * T + ((this.pAttn[e] - this.pAttn[s]) * T * (T + 1)) / 2;
    const recompute = this.recomputes(d, s, e);
    const flops = (TRAINING_FORWARDS_PER_TOKEN + (recompute ? RECOMPUTE_FORWARDS_PER_TOKEN : 0)) * forward;
    const bytes = (TRAINING_WEIGHT_READS + (recompute ? 1 : 0)) * (this.pWeights[e] - this.pWeights[s]);
    return Math.max(flops / ((dev.gflopsPrefill ?? dev.gflops) * 1e6), bytes / (dev.memBandwidthGBps * 1e6)) + FRAMES_PER_MICRO_BATCH * (dev.stepOverheadMs ?? 0);
  }

  /**
   * How many micro-batches' activations a stage [s, e) on d keeps: the runtime's rule (node job-memory.ts
   * keptActivations, which the owner applies to the memory each node reports available, less the model's ends on the
   * owner): the most, up to the micro-batches in flight, whose estimate fits d's memory here; at least 1.
   */
  keptOn(d: number, s: number, e: number): number {
    return mostKeptThatFits(this.inFlight, this.cluster.devices[d].memoryBytes, (kept) => this.memory(s, e, kept).total);
  }

  /** Whether a stage recomputes forwards in its backward: it cannot keep every micro-batch it has in flight. */
  recomputes(d: number, s: number, e: number): boolean {
    return this.keptOn(d, s, e) < this.inFlight;
  }

  /** Compute ms of one micro-batch's embedding, head, loss and their backward on d (the owner). */
  endsMs(d: number): number {
    const T = this.job.sequenceTokens;
    const p = this.profile;
    const dev = this.cluster.devices[d];
    const flops = (HEAD_FORWARDS_PER_TOKEN * p.head.flopsPerToken + CROSS_ENTROPY_FLOPS_PER_VOCAB * this.shape.vocabSize) * T;
    // The head's blocks forward and its transpose backward; the embedding rows read.
    const bytes = 2 * p.head.bytesReadPerToken + p.embedding.bytesReadPerToken * T;
    return Math.max(flops / ((dev.gflopsPrefill ?? dev.gflops) * 1e6), bytes / (dev.memBandwidthGBps * 1e6)) + (dev.tokenOverheadMs ?? 0);
  }

  /** A stage's compute per micro-batch: its layers, and the ends when it is the first stage (the owner's). */
  computeMs(d: number, s: number, e: number): number {
    return this.layersMs(d, s, e) + (s === 0 ? this.endsMs(d) : 0);
  }

  private hiddenBytes(): number {
    return this.profile.hiddenBytesPerToken * this.job.sequenceTokens;
  }

  transferMs(a: number, b: number): number {
    return a === b ? 0 : this.hiddenBytes() / (this.links.get(a, b).bandwidthMBps * 1e3);
  }

  /** A ring hop from a to b per micro-batch: the hidden states forward and their gradients back (the last hop returns to the owner's head). */
  hopMs(a: number, b: number): number {
    if (a === b) return 0;
    return this.links.get(a, b).latencyMs + this.transferMs(a, b) + this.links.get(b, a).latencyMs + this.transferMs(b, a);
  }

  /**
   * A stage's memory for the job: its range's training memory with `kept` micro-batches' activations (1, the least a
   * job needs: what fits() asks), and the owner's ends on the first stage.
   */
  memory(s: number, e: number, kept = 1): StageTrainingMemory & { ends: number } {
    const m = stageTrainingMemory(this.shape, e - s, this.pWeights[e] - this.pWeights[s], this.job.rank, this.job.sequenceTokens, this.inFlight, kept);
    const ends = s === 0 ? this.ownerEndsBytes : 0;
    return { ...m, ends, total: m.total + ends };
  }

  memoryBytes(s: number, e: number): number {
    return this.memory(s, e).total;
  }

  /** The first stage is the owner's: nobody else may hold layer 0. */
  fits(d: number, s: number, e: number): boolean {
    if (s === 0 && d !== this.owner) return false;
    return this.memoryBytes(s, e) <= this.cluster.devices[d].memoryBytes;
  }

  maxLayersFrom(d: number, s: number): number {
    let lo = s;
    let hi = this.L;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.fits(d, s, mid)) lo = mid;
      else hi = mid - 1;
    }
    return lo - s;
  }

  /** The stage costs the planners add up: per micro-batch compute and ring hops; busy = compute, send = the forward transfer. */
  stageCosts(): StageCosts {
    return {
      L: this.L,
      compute: (d, s, e) => this.computeMs(d, s, e),
      hop: (a, b) => this.hopMs(a, b),
      busy: (d, s, e) => this.computeMs(d, s, e),
      send: (a, b) => this.transferMs(a, b),
      fits: (d, s, e) => this.fits(d, s, e),
    };
  }
}
