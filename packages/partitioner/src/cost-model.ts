import type { Cluster } from './cluster.js';
import { LinkTable, validateCluster } from './cluster.js';
import type { ModelProfile } from './model-profile.js';
import type { Assignment, Objective, PlanCost, Stage } from './plan.js';
import type { FullRequestShape, RequestShape } from './request-shape.js';
import { normalizeRequest } from './request-shape.js';
import { InvalidPlanError } from './errors.js';
import { PROMPT_ROWS_PER_STEP } from './step-rows.js';
import { rowsFlopsPerMs } from './rows-rate.js';

/** Rows of one request in a batched step: how many, from which KV position, and whether its logits are needed. */
export interface StepRows {
  rows: number;
  position: number;
  logits: boolean;
  /**
   * The rows are a slice of a prompt: the step runs at the device's batched (prefill) rate, which is what a node's
   * prompt calibration is measured against (stage-run-expectation.ts), not at a rate between it and the one-row one.
   */
  prompt?: boolean;
}

/**
 * Roofline cost model of a pipeline. A stage's compute time is max(FLOPs / compute, bytes / memory bandwidth)
 * over its layers (plus embedding on the first stage, final norm + head on the last), plus the device's fixed costs
 * of a pass (passOverheadMs) and of a step that came in a frame (stepOverheadMs, every stage but the first: the
 * first device coordinates and starts the next step itself); a hop is latency + bytes / bandwidth, and the token's
 * return to the first device adds that device's fixed cost of coordinating a token (tokenOverheadMs). Devices are
 * addressed by their index in `cluster.devices`.
 *
 * Latency objective: one request's time, TTFT + (genTokens − 1) × per-token time; both are sums over
 * stages of compute + hop (the last hop returns the token id to the first stage), so a plan's latency cost is a
 * sum of per-stage terms. Throughput objective: the steady-state period of a closed pipeline with c requests,
 * max(slowest stage's busy time, ring time / c) — the exact cycle time of a deterministic cyclic pipeline.
 */
export class CostModel {
  readonly L: number;
  readonly n: number;
  readonly request: FullRequestShape;
  readonly links: LinkTable;
  /** Mean number of cached tokens at a decode step. */
  readonly meanPosition: number;
  private readonly pFlops: Float64Array;
  private readonly pAttn: Float64Array;
  private readonly pWeights: Float64Array;
  private readonly pKv: Float64Array;
  private readonly activationBytes: number;
  private readonly flopsPerMs: Float64Array;
  private readonly prefillFlopsPerMs: Float64Array;
  private readonly bytesPerMs: Float64Array;
  private readonly stepOverhead: Float64Array;
  private readonly tokenOverhead: Float64Array;
  private readonly passOverhead: Float64Array;
  /** Of tokenOverhead, the process's wake-up (at most all of it). */
  private readonly wake: Float64Array;

  constructor(
    readonly profile: ModelProfile,
    readonly cluster: Cluster,
    request: RequestShape,
  ) {
    validateCluster(cluster);
    this.L = profile.numLayers;
    this.n = cluster.devices.length;
    this.request = normalizeRequest(request);
    this.links = new LinkTable(cluster);
    this.meanPosition = this.request.promptTokens + (this.request.genTokens - 1) / 2;
    const L = this.L;
    this.pFlops = new Float64Array(L + 1);
    this.pAttn = new Float64Array(L + 1);
    this.pWeights = new Float64Array(L + 1);
    this.pKv = new Float64Array(L + 1);
    let act = 0;
    for (let i = 0; i < L; i++) {
      const l = profile.layers[i];
      this.pFlops[i + 1] = this.pFlops[i] + l.flopsPerToken;
      this.pAttn[i + 1] = this.pAttn[i] + l.attentionFlopsPerContextToken;
      this.pWeights[i + 1] = this.pWeights[i] + l.weightBytes;
      this.pKv[i + 1] = this.pKv[i] + l.kvBytesPerToken;
      act = Math.max(act, l.activationBytesPerToken);
    }
    // One prompt is prefilled at a time per stage; its working activations live on every stage.
    this.activationBytes = act * this.request.promptTokens;
    this.flopsPerMs = Float64Array.from(cluster.devices, (d) => d.gflops * 1e6);
    this.prefillFlopsPerMs = Float64Array.from(cluster.devices, (d) => (d.gflopsPrefill ?? d.gflops) * 1e6);
    this.bytesPerMs = Float64Array.from(cluster.devices, (d) => d.memBandwidthGBps * 1e6);
    this.stepOverhead = Float64Array.from(cluster.devices, (d) => d.stepOverheadMs ?? 0);
    this.tokenOverhead = Float64Array.from(cluster.devices, (d) => d.tokenOverheadMs ?? 0);
    this.passOverhead = Float64Array.from(cluster.devices, (d) => d.passOverheadMs ?? 0);
    this.wake = Float64Array.from(cluster.devices, (d) => Math.min(d.wakeMs ?? 0, d.tokenOverheadMs ?? 0));
  }

  /**
   * Fixed ms of one step of layers [s, …) on device d: its pass, and for every stage but the first the frame it came
   * in (the first stage's step is started on the coordinating device, whose token cost holds that).
   */
  private fixedStepMs(d: number, s: number): number {
    return this.passOverhead[d] + (s === 0 ? 0 : this.stepOverhead[d]);
  }

  private roofline(d: number, flops: number, bytes: number, prefill = false): number {
    return Math.max(flops / (prefill ? this.prefillFlopsPerMs[d] : this.flopsPerMs[d]), bytes / this.bytesPerMs[d]);
  }

  /** Compute ms of layers [s, e) on device d for one decode token with `position` tokens cached. */
  decodeMs(d: number, s: number, e: number, position = this.meanPosition): number {
    const h = this.profile.head;
    let flops = this.pFlops[e] - this.pFlops[s] + (this.pAttn[e] - this.pAttn[s]) * (position + 1);
    let bytes = this.pWeights[e] - this.pWeights[s] + (this.pKv[e] - this.pKv[s]) * (position + 1);
    if (s === 0) bytes += this.profile.embedding.bytesReadPerToken;
    if (e === this.L) {
      flops += h.flopsPerToken;
      bytes += h.bytesReadPerToken;
    }
    return this.roofline(d, flops, bytes) + this.fixedStepMs(d, s);
  }

  /**
   * Compute ms of one batched step of layers [s, e) on device d: several requests' rows in one pass, as the runtime's
   * continuous batching runs them. Weights are read once for all rows; each part's rows attend over its own cache
   * from `position`; the head runs for the parts that need logits. The compute rate moves from the device's one-row
   * figure (gflops) to its batched one (gflopsPrefill) as the step fills up to 64 rows; a step holding a prompt's slice
   * runs at the batched one. One decode row equals decodeMs; a whole prompt in slices, prefillMs.
   */
  stepMs(d: number, s: number, e: number, parts: readonly StepRows[]): number {
    const h = this.profile.head;
    let rows = 0;
    let flops = 0;
    let bytes = this.pWeights[e] - this.pWeights[s];
    let logits = 0;
    let prompt = false;
    const attn = this.pAttn[e] - this.pAttn[s];
    const kv = this.pKv[e] - this.pKv[s];
    for (const p of parts) {
      rows += p.rows;
      flops += (this.pFlops[e] - this.pFlops[s]) * p.rows + attn * (p.rows * p.position + (p.rows * (p.rows + 1)) / 2);
      bytes += kv * (p.position + p.rows);
      if (p.logits) logits++;
      if (p.prompt) prompt = true;
    }
    if (s === 0) bytes += this.profile.embedding.bytesReadPerToken * rows;
    if (e === this.L && logits > 0) {
      flops += h.flopsPerToken * logits;
      bytes += h.bytesReadPerToken;
    }
    const rate = prompt ? this.prefillFlopsPerMs[d] : rowsFlopsPerMs(this.flopsPerMs[d], this.prefillFlopsPerMs[d], rows);
    return Math.max(flops / rate, bytes / this.bytesPerMs[d]) + this.fixedStepMs(d, s);
  }

  /**
   * Compute ms of layers [s, e) on device d for a prefill of `tokens` tokens (logits of the last one only); the
   * runtime computes a prompt in steps of PROMPT_ROWS_PER_STEP rows, each paying the step's fixed cost.
   */
  prefillMs(d: number, s: number, e: number, tokens = this.request.promptTokens): number {
    const h = this.profile.head;
    let flops = (this.pFlops[e] - this.pFlops[s]) * tokens + ((this.pAttn[e] - this.pAttn[s]) * tokens * (tokens + 1)) / 2;
    let bytes = this.pWeights[e] - this.pWeights[s] + (this.pKv[e] - this.pKv[s]) * tokens;
    if (s === 0) bytes += this.profile.embedding.bytesReadPerToken * tokens;
    if (e === this.L) {
      flops += h.flopsPerToken;
      bytes += h.bytesReadPerToken;
    }
    return this.roofline(d, flops, bytes, true) + this.fixedStepMs(d, s) * Math.ceil(tokens / PROMPT_ROWS_PER_STEP);
  }

  /** Bytes a stage ending at layer e sends per token: a hidden state, or the token id back to the first stage. */
  payloadBytes(e: number, tokens: number): number {
    return e === this.L ? this.profile.tokenBytes : this.profile.hiddenBytesPerToken * tokens;
  }

  transferMs(a: number, b: number, bytes: number): number {
    if (a === b) return 0;
    return bytes / (this.links.get(a, b).bandwidthMBps * 1e3);
  }

  latencyMs(a: number, b: number): number {
    return a === b ? 0 : this.links.get(a, b).latencyMs;
  }

  hopMs(a: number, b: number, bytes: number): number {
    return a === b ? 0 : this.latencyMs(a, b) + this.transferMs(a, b, bytes);
  }

  /**
   * Fixed ms of coordinating one token on device `first` (sampling, streaming it, sending the next step) after the
   * last stage ran on device `last`; 0 before e = L. A token computed on its coordinator's own device does not wake it.
   */
  tokenMs(e: number, first: number, last: number): number {
    if (e !== this.L) return 0;
    return this.tokenOverhead[first] - (last === first ? this.wake[first] : 0);
  }

  /** What follows a stage ending at e on its way to `next`: the hop of `tokens` rows, and the coordinator's turn after the last stage. */
  handoffMs(a: number, next: number, e: number, tokens: number): number {
    return this.hopMs(a, next, this.payloadBytes(e, tokens)) + this.tokenMs(e, next, a);
  }

  /** Memory of a stage holding [s, e) on any device. */
  memoryBytes(s: number, e: number): number {
    const p = this.profile;
    let m = this.pWeights[e] - this.pWeights[s];
    m += (this.pKv[e] - this.pKv[s]) * this.request.contextTokens * this.request.concurrency;
    m += this.activationBytes;
    if (s === 0) m += p.embedding.weightBytes;
    if (e === this.L) {
      m += p.head.weightBytes + p.head.logitsBytes;
      if (s !== 0) m += p.head.tiedMatrixBytes;
    }
    return m;
  }

  fits(d: number, s: number, e: number): boolean {
    return this.memoryBytes(s, e) <= this.cluster.devices[d].memoryBytes;
  }

  /** Latency-objective cost of a stage on d holding [s, e) followed by device `next`: its share of one request's time. */
  latencyStageCost(d: number, s: number, e: number, next: number): number {
    const r = this.request;
    const prefill = this.prefillMs(d, s, e) + this.handoffMs(d, next, e, r.promptTokens);
    const decode = this.decodeMs(d, s, e) + this.handoffMs(d, next, e, 1);
    return prefill + (r.genTokens - 1) * decode;
  }

  /** Per-token ring contribution of a stage (decode compute + hop, + the coordinator's turn after the last stage). */
  ringStageCost(d: number, s: number, e: number, next: number): number {
    return this.decodeMs(d, s, e) + this.handoffMs(d, next, e, 1);
  }

  /** Busy time of a stage per decode token: compute + sending its output (latency is in flight, not busy). */
  occupancyMs(d: number, s: number, e: number, next: number): number {
    return this.decodeMs(d, s, e) + this.transferMs(d, next, this.payloadBytes(e, 1));
  }

  /** Checks that assignments cover [0, L) contiguously with distinct devices. */
  checkAssignments(a: readonly Assignment[]): void {
    if (a.length === 0) throw new InvalidPlanError('a plan needs at least one stage');
    const seen = new Set<number>();
    let at = 0;
    for (const x of a) {
      if (x.start !== at || x.end <= x.start) throw new InvalidPlanError(`stages must cover layers 0..${this.L} contiguously, each with ≥ 1 layer`);
      if (x.device < 0 || x.device >= this.n || seen.has(x.device)) throw new InvalidPlanError('each stage needs a distinct known device');
      seen.add(x.device);
      at = x.end;
    }
    if (at !== this.L) throw new InvalidPlanError(`stages cover ${at} of ${this.L} layers`);
  }

  /** Full figures of a plan under this cost model. */
  evaluate(a: readonly Assignment[], objective: Objective): { cost: PlanCost; stages: Stage[]; fitsInMemory: boolean } {
    this.checkAssignments(a);
    const r = this.request;
    let ttft = 0;
    let ring = 0;
    let bottleneck = 0;
    let fitsInMemory = true;
    const stages: Stage[] = a.map((x, i) => {
      const next = a[(i + 1) % a.length].device;
      const computeMs = this.decodeMs(x.device, x.start, x.end);
      const hopMs = this.hopMs(x.device, next, this.payloadBytes(x.end, 1));
      const tokenMs = this.tokenMs(x.end, next, x.device);
      const promptMs = this.prefillMs(x.device, x.start, x.end);
      ttft += promptMs + this.handoffMs(x.device, next, x.end, r.promptTokens);
      ring += computeMs + hopMs + tokenMs;
      bottleneck = Math.max(bottleneck, this.occupancyMs(x.device, x.start, x.end, next));
      const dev = this.cluster.devices[x.device];
      const memoryBytes = this.memoryBytes(x.start, x.end);
      if (memoryBytes > dev.memoryBytes) fitsInMemory = false;
      return { device: dev.id, startLayer: x.start, endLayer: x.end, memoryBytes, memoryAvailableBytes: dev.memoryBytes, computeMs, promptMs, hopMs, stageMs: computeMs + hopMs + tokenMs };
    });
    // With c requests in flight the runtime batches: they travel as m = min(c, k) micro-batches of ⌈c/m⌉ rows, every
    // stage computing one while the others compute theirs. A cycle (each request one token further) takes the longer
    // of the busiest stage's m batches and one micro-batch's trip round the ring.
    const m = Math.min(r.concurrency, a.length);
    const b = Math.ceil(r.concurrency / m);
    let batchRing = 0;
    let batchBottleneck = 0;
    a.forEach((x, i) => {
      const next = a[(i + 1) % a.length].device;
      const step = this.stepMs(x.device, x.start, x.end, Array.from({ length: b }, () => ({ rows: 1, position: this.meanPosition, logits: true })));
      const send = this.transferMs(x.device, next, this.payloadBytes(x.end, 1) * b);
      batchRing += step + send + this.latencyMs(x.device, next) + this.tokenMs(x.end, next, x.device);
      batchBottleneck = Math.max(batchBottleneck, step + send);
    });
    const cycle = r.concurrency === 1 ? ring : Math.max(m * batchBottleneck, batchRing);
    // The planners minimise the unbatched period (a sum and a max of per-stage terms, which the exact DP needs);
    // the throughput reported is the batched one, which the runtime delivers.
    const period = Math.max(bottleneck, ring / r.concurrency);
    const cost: PlanCost = {
      objectiveValue: objective === 'latency' ? ttft + (r.genTokens - 1) * ring : period,
      ttftMs: ttft,
      tokenLatencyMs: ring,
      throughputTokPerS: (1000 * r.concurrency) / cycle,
      bottleneckMs: bottleneck,
    };
    return { cost, stages, fitsInMemory };
  }

  objectiveValue(a: readonly Assignment[], objective: Objective): number {
    return this.evaluate(a, objective).cost.objectiveValue;
  }

  /** Largest number of layers device d can hold starting at layer s (0 if not even one). */
  maxLayersFrom(d: number, s: number): number {
    const cap = this.cluster.devices[d].memoryBytes;
    let lo = s;
    let hi = this.L;
    // memoryBytes(s, e) grows with e; binary search the last e that fits.
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.memoryBytes(s, mid) <= cap) lo = mid;
      else hi = mid - 1;
    }
    return lo - s;
  }
}
