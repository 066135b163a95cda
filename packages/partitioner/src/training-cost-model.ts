import type { Cluster } from './cluster.js';
import { LinkTable, validateCluster } from './cluster.js';
import type { ModelShape } from './model-shape.js';
import type { ModelProfile } from './model-profile.js';
import { modelProfile } from './model-profile.js';
import type { PlanningModel } from './planning-model.js';
import type { StageCosts } from './stage-costs.js';
import type { TrainingShape } from './training-shape.js';
import { normalizeTraining } from './training-shape.js';
import { weightPassRowsFlopsPerMs } from './rows-rate.js';
import { loraProjectionDims, mostKeptThatFits, ownerEndsTrainingBytes, stageTrainingMemory, type StageTrainingMemory } from './training-memory.js';

/**
 * FLOPs of one training token through a layer, in forwards of that layer, when the stage keeps its micro-batches'
 * activations from their forwards: the forward (1) and the backward (2: the input gradient through each frozen matrix
 * costs one forward's product, and attention's backward, the LoRA gradients and the elementwise ops' gradients about
 * another). So 3× a prefill token's FLOPs; the runtime measures 3–4.5× on a middle stage and 4–5× on one device
 * (docs/training.md, "Speed"), the rest being the fixed costs LAYER_FIXED_FLOPS and the passes' and frames' price.
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

/**
 * Work per layer and micro-batch that its FLOPs do not count, in FLOPs at the device's one-row rate: a layer's forward
 * and backward are some hundred ops (products, LoRA pairs, norms, rope, attention per head, SwiGLU, residuals), each
 * with its call, its arrays and its loops whatever the width. Fitted on stories260K (64 wide, 17–23-row sequences, mean
 * 19.2), one node at load 1.4–2.3 (2026-12-07, after the third round of training speed): 0.6–0.83 ms per layer and
 * micro-batch as the owner waited for its stage (the medians of two rounds of 3 runs 0.68 and 0.73), of which its
 * FLOPs take 0.15 at the node's rate for 19 rows, so the medians leave 0.53–0.58 ms, 8.1–8.7 MFLOP's worth at its
 * 14–16.3 GFLOP/s one-row rate (the profile's one-row rate moves between node starts more than this time does) —
 * what a tiny model's step is made of; beside a 768-wide layer's ~15 ms it is 3–4 %.
 */
export const LAYER_FIXED_FLOPS = 8.5e6;

/**
 * AdamW's step per adapter value (scalar code: the clipping scale, the moments, a square root, a division, the
 * gradient zeroed), in FLOPs at the one-row rate: fitted from the owner's wait for a stage's step at load 1.4–2.3,
 * 0.4–0.85 ms for stories260K's 46 240 values and 13–18.5 ms for the 768-wide model's 868 352, at 12.5–16.6 GFLOP/s
 * one-row: 120–320 a value, median 258 over 11 runs.
 */
export const ADAMW_FLOPS_PER_VALUE = 250;
/**
 * The gradients' square sum per adapter value (a multiply-add in a scalar loop, at the one-row rate of the kernels'
 * products): fitted as AdamW's, 0.05–0.3 ms on stories260K and 2.5–8.6 ms on the 768-wide model, 15–130 a value,
 * median 49 over 10 runs.
 */
const GRAD_NORM_FLOPS_PER_VALUE = 50;

/** A micro-batch's ops on a stage: its forward and its backward, each a pass, and on another node than the owner each a frame in and one out. */
const OPS_PER_MICRO_BATCH = 2;

/**
 * Cost model of one training step of a LoRA job through a pipeline (roofline, as CostModel for serving, with its
 * fixed costs). The job's owner keeps the embeddings, the final norm, the head, the labels and the loss, and holds the
 * first stage ([0, e) is only allowed on it). Per micro-batch (one sequence of T rows, the job's mean) a stage on d holding [s, e)
 * costs max(3 × its layers' forward FLOPs at d's rate for T rows, 2 × its weights / d's bandwidth), a share of one
 * forward more when d cannot keep the activations of all its micro-batches in flight (keptOn), its layers' fixed work
 * (LAYER_FIXED_FLOPS), a pass's fixed cost per op and, on another node than the owner, a frame's (stepOverheadMs) per
 * op. Every op of a stage on another node is relayed by the owner (owner → stage → owner, as the runtime does): two
 * round trips per micro-batch, each carrying T hidden states or their gradients, and the owner's turn for each reply
 * (tokenOverheadMs). The owner adds its ends. Once per step: the gradients' norm (one round to each stage in turn)
 * and AdamW's step (every stage at once).
 */
export class TrainingCostModel implements PlanningModel {
  readonly L: number;
  readonly n: number;
  readonly profile: ModelProfile;
  readonly job: Required<TrainingShape>;
  /** Micro-batches in flight (one per stage, at most the step's): what the throughput machinery divides the ring by. */
  readonly request: { readonly concurrency: number };
  private readonly links: LinkTable;
  private readonly pFlops: Float64Array;
  private readonly pAttn: Float64Array;
  private readonly pWeights: Float64Array;
  private readonly loraFlopsPerTokenLayer: number;
  private readonly loraValuesPerLayer: number;
  private readonly inFlight: number;
  private readonly ownerEndsBytes: number;

  constructor(
    readonly shape: ModelShape,
    readonly cluster: Cluster,
    job: TrainingShape,
    /** Index in cluster.devices of the job's owner. */
    readonly owner: number,
    /**
     * Stages of the plan priced (the runtime has one micro-batch per stage in flight); default the cluster's devices,
     * the most a plan can have, while the planners search.
     */
    stages?: number,
  ) {
    validateCluster(cluster);
    this.profile = modelProfile(shape);
    this.job = normalizeTraining(job);
    this.L = shape.numLayers;
    this.n = cluster.devices.length;
    if (!Number.isInteger(owner) || owner < 0 || owner >= this.n) throw new RangeError(`owner index ${owner} is not a device of the cluster`);
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
    this.loraValuesPerLayer = loraProjectionDims(shape).reduce((s, p) => s + this.job.rank * (p.inDim + p.outDim), 0);
    this.loraFlopsPerTokenLayer = 2 * this.loraValuesPerLayer;
    // The runtime keeps one micro-batch per stage in flight (pipelined-step.ts), at most the step's micro-batches.
    this.inFlight = Math.min(Math.max(1, Math.min(stages ?? this.n, this.n)), this.job.microBatches);
    this.request = { concurrency: this.inFlight };
    const head = this.profile.head;
    this.ownerEndsBytes = ownerEndsTrainingBytes(shape, this.profile.embedding.weightBytes, shape.tiedEmbeddings ? 0 : head.weightBytes - shape.hiddenSize * 4);
  }

  /** FLOPs per ms of d's products over one micro-batch's rows (rows-rate.ts: a pass over the weights and each row's compute). */
  private rowsRate(d: number, rows: number): number {
    const dev = this.cluster.devices[d];
    return weightPassRowsFlopsPerMs(dev.gflops * 1e6, (dev.gflopsPrefill ?? dev.gflops) * 1e6, rows);
  }

  /** ms of d's fixed (scalar) work of `flops` FLOPs, at its one-row rate. */
  private scalarMs(d: number, flops: number): number {
    return flops / (this.cluster.devices[d].gflops * 1e6);
  }

  /** Compute ms of one micro-batch's forward and backward through layers [s, e) on d, without the owner's ends or relays. */
  layersMs(d: number, s: number, e: number): number {
    if (e <= s) return 0;
    const T = this.job.meanTokens;
    const dev = this.cluster.devices[d];
    const forward = (this.pFlops[e] - this.pFlops[s] + this.loraFlopsPerTokenLayer * (e - s)) * T + ((this.pAttn[e] - this.pAttn[s]) * T * (T + 1)) / 2;
    const recomputed = RECOMPUTE_FORWARDS_PER_TOKEN * this.recomputedShare(d, s, e);
    const flops = (TRAINING_FORWARDS_PER_TOKEN + recomputed) * forward;
    const bytes = (TRAINING_WEIGHT_READS + recomputed) * (this.pWeights[e] - this.pWeights[s]);
    const roofline = Math.max(flops / this.rowsRate(d, T), bytes / (dev.memBandwidthGBps * 1e6));
    const frames = d === this.owner ? 0 : dev.stepOverheadMs ?? 0;
    return roofline + this.scalarMs(d, LAYER_FIXED_FLOPS * (e - s)) + OPS_PER_MICRO_BATCH * ((dev.passOverheadMs ?? 0) + frames);
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

  /** The share of a stage's micro-batches whose forward it recomputes: those of the in flight beyond what it keeps. */
  recomputedShare(d: number, s: number, e: number): number {
    return (this.inFlight - this.keptOn(d, s, e)) / this.inFlight;
  }

  /** Compute ms of one micro-batch's embedding, head, loss and their backward on d (the owner), with its turn for the micro-batch. */
  endsMs(d: number): number {
    const T = this.job.meanTokens;
    const counted = this.job.lossTokens;
    const p = this.profile;
    const dev = this.cluster.devices[d];
    // The head and cross-entropy on the rows the loss counts only (the runtime skips the others).
    const flops = (HEAD_FORWARDS_PER_TOKEN * p.head.flopsPerToken + CROSS_ENTROPY_FLOPS_PER_VOCAB * this.shape.vocabSize) * counted;
    // The head's blocks forward and its transpose backward; the embedding rows read.
    const bytes = 2 * p.head.bytesReadPerToken + p.embedding.bytesReadPerToken * T;
    return Math.max(flops / this.rowsRate(d, counted), bytes / (dev.memBandwidthGBps * 1e6)) + (dev.tokenOverheadMs ?? 0);
  }

  /** A stage's compute per micro-batch: its layers, and the ends when it is the first stage (the owner's). */
  computeMs(d: number, s: number, e: number): number {
    return this.layersMs(d, s, e) + (s === 0 ? this.endsMs(d) : 0);
  }

  private hiddenBytes(): number {
    return this.profile.hiddenBytesPerToken * this.job.meanTokens;
  }

  transferMs(a: number, b: number): number {
    return a === b ? 0 : this.hiddenBytes() / (this.links.get(a, b).bandwidthMBps * 1e3);
  }

  /** One request from the owner to d and its answer: both ways' latency and the owner's turn for the reply (0 on the owner). */
  private roundTripMs(d: number): number {
    const o = this.owner;
    if (d === o) return 0;
    return this.links.get(o, d).latencyMs + this.links.get(d, o).latencyMs + (this.cluster.devices[o].tokenOverheadMs ?? 0);
  }

  /**
   * The relays of one micro-batch's ops on a stage on d, through the owner: its forward (T hidden states there, T
   * back) and its backward (T gradients there, T back), each a round trip; 0 on the owner, whose stage is called directly.
   */
  relayMs(d: number): number {
    if (d === this.owner) return 0;
    const o = this.owner;
    return OPS_PER_MICRO_BATCH * (this.roundTripMs(d) + this.transferMs(o, d) + this.transferMs(d, o));
  }

  /**
   * The ring's hop from a to b per micro-batch: b's relays (every hop goes through the owner, so what a stage costs
   * the ring is its own round trips, whichever stage came before it).
   */
  hopMs(_a: number, b: number): number {
    return this.relayMs(b);
  }

  /**
   * Once per step, on stages on devices `ds` holding `layers` layers each: the gradients' square sum asked of each stage
   * in turn (a round trip and its sum), then AdamW's step on every stage at once (the slowest's round trip and step).
   */
  stepFixedMs(ds: readonly number[], layers: readonly number[]): number {
    let norm = 0;
    let step = 0;
    ds.forEach((d, i) => {
      const values = this.loraValuesPerLayer * layers[i];
      const frame = d === this.owner ? 0 : this.cluster.devices[d].stepOverheadMs ?? 0;
      norm += this.roundTripMs(d) + frame + this.scalarMs(d, GRAD_NORM_FLOPS_PER_VALUE * values);
      step = Math.max(step, this.roundTripMs(d) + frame + this.scalarMs(d, ADAMW_FLOPS_PER_VALUE * values));
    });
    return norm + step;
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

  /** The stage costs the planners add up: per micro-batch compute and relays; busy = compute, send = the forward transfer. */
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
